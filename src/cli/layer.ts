import { parseArgs } from "node:util";
import { Effect } from "effect";
import { makeRedisBus } from "../bus/redis-bus.ts";
import { layerKeys } from "../bridge/store.ts";
import { isLayerId, streams } from "../protocol/streams.ts";
import { CONNECTION_OPTIONS, UsageError, connectionFrom, runUntilSignal } from "./connection.ts";

export const LAYER_USAGE = "esper layer reset --redis URL --layer ID [--yes]";

/**
 * `esper layer reset`: forgets what the store holds of a layer (its seeds' snapshots, its record
 * and generation marker, its dedupe table), so its next worker starts it over with every seed
 * DORMANT. The way out after Redis lost a layer's data and no backup is to be had
 * (docs/operations.md). Its streams stay: queued commands, events and dead letters are kept.
 * Without --yes it only says what it would delete.
 */
export const runLayer = async (args: string[]): Promise<number> => {
  const [action, ...rest] = args;
  const { values } = parseArgs({ args: rest, options: { ...CONNECTION_OPTIONS, layer: { type: "string" }, yes: { type: "boolean", default: false } } });
  if (action !== "reset" || !values.layer) throw new UsageError(`usage: ${LAYER_USAGE}`);
  if (!isLayerId(values.layer)) throw new UsageError(`--layer ${values.layer}: a layer id is 1 to 64 of [A-Za-z0-9_-]`);
  const connection = connectionFrom(values);
  const keys = layerKeys(streams(connection.namespace), values.layer);
  const doomed = [keys.state, keys.meta, keys.results, keys.resultsOld];
  if (!values.yes) {
    console.log(`would delete ${doomed.join(", ")}; stop the layer's worker first, then run again with --yes`);
    return 2;
  }
  return runUntilSignal(
    Effect.gen(function* () {
      const bus = yield* makeRedisBus({ url: connection.url });
      yield* bus.del(doomed);
      console.log(`deleted ${doomed.join(", ")}; layer ${values.layer} starts over (every seed DORMANT) with its next worker`);
      return 0;
    }),
  );
};
