import { Command } from "commander";
import { Effect } from "effect";
import { parseSeedState } from "../../machines/lifecycle.ts";
import { makeRedisBus } from "../bus/redis-bus.ts";
import { lifecycleCommand } from "../protocol/make.ts";
import { makeClient } from "../client/client.ts";
import { UsageError, connectionFrom, runUntilSignal, withConnection, type ConnectionFlags } from "./connection.ts";

interface SendFlags extends ConnectionFlags {
  readonly layer: string;
  readonly seed: string;
  readonly target: string;
  readonly force: boolean;
  readonly reason: string;
  readonly timeoutMs: string;
}

/** `esper send`: one LifecycleTransitionCommand; prints its CommandResult as JSON; exit 0 when it succeeded. */
export const sendCommand = (done: (code: number) => void): Command =>
  withConnection(
    new Command("send")
      .description("send one lifecycle command to a layer and print its CommandResult (exit 0 when it succeeded)")
      .requiredOption("--layer <id>", "the layer")
      .requiredOption("--seed <n|all>", "a seed number, or all (every seed of the layer)")
      .requiredOption("--target <state>", "the lifecycle state to move to (DORMANT, GERMINATED, TRAINING, ...)")
      .option("--force", "skip the validators (never the graph's edges)", false)
      .option("--reason <text>", "why, recorded with the transition", "")
      .option("--timeout-ms <ms>", "how long the command may wait to be applied", "5000"),
  )
    .addHelpText("after", "\nExamples:\n  esper send --layer dense1 --seed 3 --target GERMINATED\n  esper send --redis redis://10.0.0.5:6379 --layer dense1 --seed all --target CANCELLED --reason 'operator'")
    .action(async (flags: SendFlags) => done(await runSend(flags)));

const runSend = async (flags: SendFlags): Promise<number> => {
  const target = parseSeedState(flags.target);
  if (!target) throw new UsageError(`--target ${flags.target} is not a lifecycle state (DORMANT, GERMINATED, TRAINING, ...)`);
  const seedId = flags.seed === "all" ? null : Number(flags.seed);
  if (seedId !== null && (!Number.isInteger(seedId) || seedId < 0)) throw new UsageError(`--seed ${flags.seed}: a seed number or 'all'`);
  const timeoutMs = Number(flags.timeoutMs);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new UsageError(`--timeout-ms ${flags.timeoutMs}: a positive number of milliseconds`);
  const connection = connectionFrom(flags);
  const command = lifecycleCommand({ layer_id: flags.layer, seed_id: seedId, target_state: target, force: flags.force, reason: flags.reason, timeout_ms: timeoutMs, source: "esper.cli" });
  return runUntilSignal(
    Effect.gen(function* () {
      const bus = yield* makeRedisBus({ url: connection.url });
      const client = yield* makeClient(bus, { namespace: connection.namespace, codec: connection.codec, ...(connection.hmacKey !== undefined ? { hmacKey: connection.hmacKey } : {}) });
      const result = yield* Effect.promise(() => client.send(command));
      console.log(JSON.stringify(result, null, 2));
      return result.success ? 0 : 1;
    }),
    connection.url,
  );
};
