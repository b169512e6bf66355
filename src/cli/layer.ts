import { Command } from "commander";
import { Effect } from "effect";
import { makeRedisBus } from "../bus/redis-bus.ts";
import { layerKeys } from "../bridge/store.ts";
import { isLayerId, streams } from "../protocol/streams.ts";
import { UsageError, connectionFrom, runUntilSignal, withConnection, type ConnectionFlags } from "./connection.ts";

interface ResetFlags extends ConnectionFlags {
  readonly layer: string;
  readonly yes: boolean;
}

/**
 * `esper layer reset`: forgets what the store holds of a layer (its seeds' snapshots, its record
 * and generation marker, its dedupe table), so its next worker starts it over with every seed
 * DORMANT. The way out after Redis lost a layer's data and no backup is to be had
 * (docs/operations.md). Its streams stay: queued commands, events and dead letters are kept.
 * Without --yes it only says what it would delete.
 */
export const layerCommand = (done: (code: number) => void): Command =>
  new Command("layer").description("manage a layer's stored state").addCommand(
    withConnection(
      new Command("reset")
        .description("forget a layer's stored state (after Redis lost its data): its next worker starts it over, every seed DORMANT; streams are kept")
        .requiredOption("--layer <id>", "the layer")
        .option("--yes", "delete; without it, only say what would be deleted", false),
    )
      .addHelpText("after", "\nExamples:\n  esper layer reset --layer dense1          # says what it would delete\n  esper layer reset --layer dense1 --yes    # after stopping the layer's worker")
      .action(async (flags: ResetFlags) => done(await runReset(flags))),
  );

const runReset = async (flags: ResetFlags): Promise<number> => {
  if (!isLayerId(flags.layer)) throw new UsageError(`--layer ${flags.layer}: a layer id is 1 to 64 of [A-Za-z0-9_-]`);
  const connection = connectionFrom(flags);
  const keys = layerKeys(streams(connection.namespace), flags.layer);
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
