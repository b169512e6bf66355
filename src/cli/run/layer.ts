/** The work of `esper layer`, loaded only when it runs (so `--help` loads none of it). */
import { Effect } from "effect";
import { makeRedisBus } from "../../bus/redis-bus.ts";
import { layerKeys } from "../../bridge/store.ts";
import { isLayerId, streams } from "../../protocol/streams.ts";
import { connectionFrom, runUntilSignal } from "../connection.ts";
import { UsageError } from "../flags.ts";
import type { ResetFlags } from "../layer.ts";

export const runReset = async (flags: ResetFlags): Promise<number> => {
  if (!isLayerId(flags.layer)) throw new UsageError(`--layer ${flags.layer}: a layer id is 1 to 64 of [A-Za-z0-9_-]`);
  const connection = connectionFrom(flags);
  const keys = layerKeys(streams(connection.namespace, connection.topology), flags.layer);
  const doomed = [keys.state, keys.meta, keys.results, keys.resultsOld];
  if (!flags.yes) {
    console.log(`would delete ${doomed.join(", ")}; stop the layer's worker first, then run again with --yes`);
    return 2;
  }
  return runUntilSignal(
    Effect.gen(function* () {
      const bus = yield* makeRedisBus({ url: connection.url });
      yield* bus.del(doomed);
      console.log(`deleted ${doomed.join(", ")}; layer ${flags.layer} starts over (every seed DORMANT) with its next worker`);
      return 0;
    }),
    connection.url,
  );
};
