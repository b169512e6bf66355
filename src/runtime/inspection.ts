/**
 * Opt-in inspection through @statelyai/inspect. Nothing touches the network unless asked:
 * - `ESPER_INSPECT=ws://host:port` streams to Stately's WebSocket inspector;
 * - `ESPER_INSPECT=file:PATH` records the same inspection events as JSON lines, offline.
 */
import { createWriteStream } from "node:fs";
import { createInspector, createWebSocketInspector, type StatelyInspectionEvent } from "@statelyai/inspect";
import { Data } from "effect";
import type { InspectionEvent, Observer } from "xstate";

export interface Inspection {
  /** Pass as `inspect` to createActor. */
  readonly observer: Observer<InspectionEvent>;
  readonly target: string;
  /** Flushes and closes (the file is complete once this resolves). */
  readonly stop: () => Promise<void>;
}

export class InspectionConfigError extends Data.TaggedError("InspectionConfigError")<{ readonly message: string }> {}

/** Where inspection events go: a JSON line each, in order. */
class JsonLinesAdapter {
  private readonly out;
  constructor(path: string) {
    this.out = createWriteStream(path, { flags: "a" });
  }
  send(event: StatelyInspectionEvent): void {
    this.out.write(`${JSON.stringify(event)}\n`);
  }
  close(): Promise<void> {
    return new Promise((resolve, reject) => this.out.end((error?: Error | null) => (error ? reject(error) : resolve())));
  }
}

/** Reads `spec` (default: ESPER_INSPECT); null when inspection is off. */
export const inspectionFrom = (spec: string | undefined = process.env.ESPER_INSPECT): Inspection | null => {
  if (spec === undefined || spec.trim() === "") return null;
  if (spec.startsWith("ws://") || spec.startsWith("wss://")) {
    const inspector = createWebSocketInspector({ url: spec });
    return {
      observer: inspector.inspect,
      target: spec,
      stop: async () => inspector.stop(),
    };
  }
  if (spec.startsWith("file:")) {
    const path = spec.slice("file:".length);
    if (path === "") throw new InspectionConfigError({ message: "ESPER_INSPECT=file: needs a path, e.g. ESPER_INSPECT=file:./inspect.jsonl" });
    const adapter = new JsonLinesAdapter(path);
    const inspector = createInspector(adapter);
    return {
      observer: inspector.inspect,
      target: spec,
      stop: async () => {
        inspector.stop();
        await adapter.close();
      },
    };
  }
  throw new InspectionConfigError({
    message: `ESPER_INSPECT=${spec} is not understood; use ws://host:port (Stately inspector) or file:PATH (JSON lines)`,
  });
};
