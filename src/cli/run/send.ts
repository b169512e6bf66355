/** The work of `esper send`, loaded only when it runs (so `--help` loads none of it). */
import { Effect } from "effect";
import { parseSeedState } from "../../../machines/lifecycle.ts";
import { makeRedisBus } from "../../bus/redis-bus.ts";
import { lifecycleCommand } from "../../protocol/make.ts";
import { makeClient } from "../../client/client.ts";
import { connectionFrom, runUntilSignal } from "../connection.ts";
import { UsageError } from "../flags.ts";
import type { SendFlags } from "../send.ts";

export const runSend = async (flags: SendFlags): Promise<number> => {
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
      const client = yield* makeClient(bus, { namespace: connection.namespace, topology: connection.topology, codec: connection.codec, ...(connection.hmacKey !== undefined ? { hmacKey: connection.hmacKey } : {}) });
      const result = yield* Effect.promise(() => client.send(command));
      console.log(JSON.stringify(result, null, 2));
      return result.success ? 0 : 1;
    }),
    connection.url,
  );
};
