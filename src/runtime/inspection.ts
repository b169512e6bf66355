/**
 * Opt-in inspection through @statelyai/inspect. Nothing touches the network unless asked:
 * - `ESPER_INSPECT=ws://host:port` streams to Stately's WebSocket inspector (inspector-socket.ts:
 *   every actor is replayed to a receiver that connects late, and nothing keeps the process alive);
 * - `ESPER_INSPECT=file:PATH` records the same inspection events as JSON lines, offline.
 */
import { createWriteStream } from "node:fs";
import { createInspector, type StatelyInspectionEvent } from "@statelyai/inspect";
import { Data } from "effect";
import type { InspectionEvent, Observer } from "xstate";
import { InspectorSocket } from "./inspector-socket.ts";

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
  private closed = false;
  constructor(path: string) {
    this.out = createWriteStream(path, { flags: "a" });
  }
  send(event: StatelyInspectionEvent): void {
    // An event that arrives after close (an actor used after its system closed) is dropped:
    // writing to the ended stream would throw from a timer and take the process down.
    if (this.closed) return;
    this.out.write(`${JSON.stringify(event)}\n`);
  }
  close(): Promise<void> {
    this.closed = true;
    return new Promise((resolve, reject) => this.out.end((error?: Error | null) => (error ? reject(error) : resolve())));
  }
}

/**
 * The inspector hands each event to its adapter on a later macrotask (setTimeout 0), so the
 * events of the last steps before a stop are still queued when it is called; waiting one
 * macrotask lets them through first (same-delay timers run in the order they were set).
 */
const flushInspector = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

/** Reads `spec` (default: ESPER_INSPECT); null when inspection is off. */
export const inspectionFrom = (spec: string | undefined = process.env.ESPER_INSPECT): Inspection | null => {
  if (spec === undefined || spec.trim() === "") return null;
  if (spec.startsWith("ws://") || spec.startsWith("wss://")) {
    const socket = new InspectorSocket(spec);
    const inspector = createInspector(socket);
    socket.start();
    return {
      observer: inspector.inspect,
      target: spec,
      stop: async () => {
        await flushInspector();
        await socket.stop();
      },
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
        await flushInspector();
        inspector.stop();
        await adapter.close();
      },
    };
  }
  throw new InspectionConfigError({
    message: `ESPER_INSPECT=${spec} is not understood; use ws://host:port (Stately inspector) or file:PATH (JSON lines)`,
  });
};
