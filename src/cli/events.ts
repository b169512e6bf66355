import { parseArgs } from "node:util";
import { Effect } from "effect";
import { makeRedisBus } from "../bus/redis-bus.ts";
import { makeClient } from "../client/client.ts";
import type { Entry } from "../bus/bus.ts";
import type { ProtocolError } from "../protocol/protocol-error.ts";
import { CONNECTION_OPTIONS, UsageError, connectionFrom, runUntilSignal } from "./connection.ts";

/** `esper events --layer ID [--telemetry]`: tails a layer's events (or telemetry), one JSON line each, until SIGINT. */
export const runEvents = async (args: string[]): Promise<number> => {
  const { values } = parseArgs({ args, options: { ...CONNECTION_OPTIONS, layer: { type: "string" }, telemetry: { type: "boolean", default: false } } });
  if (!values.layer) throw new UsageError("usage: esper events --redis URL --layer ID [--telemetry]");
  const connection = connectionFrom(values);
  const layerId = values.layer;
  return runUntilSignal(
    Effect.gen(function* () {
      const bus = yield* makeRedisBus({ url: connection.url });
      const client = yield* makeClient(bus, { namespace: connection.namespace, ...(connection.hmacKey !== undefined ? { hmacKey: connection.hmacKey } : {}) });
      const print = (message: unknown, id: string) => console.log(JSON.stringify({ id, ...(message as object) }));
      // An entry nobody can read is said, on stderr, never skipped in silence.
      const unreadable = (error: ProtocolError, entry: Entry) =>
        console.error(`entry ${entry.id} (type ${JSON.stringify(entry.fields.type ?? null)}) could not be read: ${error.code}: ${error.message}`);
      yield* Effect.promise(() => (values.telemetry ? client.telemetry(layerId, print, unreadable) : client.events(layerId, print, unreadable)));
      console.error(`following ${values.telemetry ? "telemetry" : "events"} of layer ${layerId}; Ctrl-C to stop`);
      return yield* Effect.never;
    }),
  );
};
