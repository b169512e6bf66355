import { parseArgs } from "node:util";
import { Effect } from "effect";
import { parseSeedState } from "../../machines/lifecycle.ts";
import { makeRedisBus } from "../bus/redis-bus.ts";
import { lifecycleCommand } from "../protocol/make.ts";
import { makeClient } from "../client/client.ts";
import { CONNECTION_OPTIONS, UsageError, connectionFrom, runUntilSignal } from "./connection.ts";

export const SEND_USAGE = "esper send --redis URL --layer ID --seed N|all --target STATE [--force] [--reason TEXT] [--timeout-ms MS]";

/** `esper send`: one LifecycleTransitionCommand; prints its CommandResult as JSON; exit 0 when it succeeded. */
export const runSend = async (args: string[]): Promise<number> => {
  const { values } = parseArgs({
    args,
    options: {
      ...CONNECTION_OPTIONS,
      layer: { type: "string" },
      seed: { type: "string" },
      target: { type: "string" },
      force: { type: "boolean", default: false },
      reason: { type: "string", default: "" },
      "timeout-ms": { type: "string" },
    },
  });
  if (!values.layer || values.seed === undefined || !values.target) throw new UsageError(`usage: ${SEND_USAGE}`);
  const target = parseSeedState(values.target);
  if (!target) throw new UsageError(`--target ${values.target} is not a lifecycle state (DORMANT, GERMINATED, TRAINING, ...)`);
  const seedId = values.seed === "all" ? null : Number(values.seed);
  if (seedId !== null && (!Number.isInteger(seedId) || seedId < 0)) throw new UsageError(`--seed must be a seed number or 'all'`);
  const connection = connectionFrom(values);
  const timeoutMs = values["timeout-ms"] === undefined ? 5_000 : Number(values["timeout-ms"]);
  const command = lifecycleCommand({
    layer_id: values.layer,
    seed_id: seedId,
    target_state: target,
    force: values.force,
    reason: values.reason,
    timeout_ms: timeoutMs,
    source: "esper.cli",
  });
  return runUntilSignal(
    Effect.gen(function* () {
      const bus = yield* makeRedisBus({ url: connection.url });
      const client = yield* makeClient(bus, { namespace: connection.namespace, codec: connection.codec, ...(connection.hmacKey !== undefined ? { hmacKey: connection.hmacKey } : {}) });
      const result = yield* Effect.promise(() => client.send(command));
      console.log(JSON.stringify(result, null, 2));
      return result.success ? 0 : 1;
    }),
  );
};
