/** The work of `esper events`, loaded only when it runs (so `--help` loads none of it). */
import { Effect } from "effect";
import { makeRedisBus } from "../../bus/redis-bus.ts";
import { makeClient } from "../../client/client.ts";
import type { Entry } from "../../bus/bus.ts";
import type { ProtocolError } from "../../protocol/protocol-error.ts";
import { connectionFrom, runUntilSignal } from "../connection.ts";
import type { EventsFlags } from "../events.ts";

export const runEvents = async (flags: EventsFlags): Promise<number> => {
  const connection = connectionFrom(flags);
  const layerId = flags.layer;
  return runUntilSignal(
    Effect.gen(function* () {
      const bus = yield* makeRedisBus({ url: connection.url });
      const client = yield* makeClient(bus, { namespace: connection.namespace, topology: connection.topology, ...(connection.hmacKey !== undefined ? { hmacKey: connection.hmacKey } : {}) });
      const print = (message: unknown, id: string) => console.log(JSON.stringify({ id, ...(message as object) }));
      // An entry nobody can read is said, on stderr, never skipped in silence.
      const unreadable = (error: ProtocolError, entry: Entry) =>
        console.error(`entry ${entry.id} (type ${JSON.stringify(entry.fields.type ?? null)}) could not be read: ${error.code}: ${error.message}`);
      yield* Effect.promise(() => (flags.telemetry ? client.telemetry(layerId, print, unreadable) : client.events(layerId, print, unreadable)));
      console.error(`following ${flags.telemetry ? "telemetry" : "events"} of layer ${layerId}; Ctrl-C to stop`);
      return yield* Effect.never;
    }),
    connection.url,
  );
};
