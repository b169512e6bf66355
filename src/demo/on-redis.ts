/**
 * `esper demo --redis URL`: the grown arm with every role in its own process, on Redis. Starts the
 * workers and Tamiyo (cluster.ts) in a namespace of their own, trains here while they own and
 * steer the layers (growth-remote.ts), then stops them and, unless asked to keep it, deletes what
 * the run wrote to Redis.
 */
import { Effect, Exit, Scope } from "effect";
import { makeRedisBus, type RedisBus } from "../bus/redis-bus.ts";
import { layerKeys } from "../bridge/store.ts";
import { GROUPS, streams } from "../protocol/streams.ts";
import { tamiyoLeaseKeys } from "../tamiyo/leader.ts";
import { startCluster, type Cluster } from "./cluster.ts";
import type { GrowthConfig, GrownResult, Progress } from "./growth.ts";
import { decideEveryTicksOf, runGrownRemote } from "./growth-remote.ts";
import type { DigitSplit } from "./mnist.ts";
import { HOST_LAYERS, layerProfiles } from "./model.ts";

/** Where and how the demo runs across processes. */
export interface OnRedisOptions {
  readonly url: string;
  /** Key namespace of the run. Default: a new one, `demo-<time>`, so a run never meets an earlier one's seeds. */
  readonly namespace?: string;
  /** Extra workers and Tamiyos waiting to take over. Default 0. */
  readonly standbys?: number;
  /** Leave the run's keys in Redis (for `esper status`, `esper events`). Default false: deleted at the end. */
  readonly keep?: boolean;
  /** Told of the processes once they are ready (the chaos test kills them). */
  readonly onCluster?: (cluster: Cluster) => void;
  /** Called after every training step; awaited. */
  readonly afterStep?: (step: number) => Promise<void>;
}

/** Until the layers' owners have read and acked every command written to them (`withinMs` at most). */
const drained = async (bus: RedisBus, namespace: string, withinMs: number): Promise<void> => {
  const names = streams(namespace);
  const deadline = Date.now() + withinMs;
  const busy = Effect.gen(function* () {
    for (const { id } of HOST_LAYERS) {
      const last = yield* bus.lastId(names.control(id));
      if (last === "0-0" || last === "") continue;
      const info = yield* bus.groupInfo(names.control(id), GROUPS.kasmina);
      if (info === undefined || info.pending > 0 || info.lastDeliveredId !== last) return true;
    }
    return false;
  }).pipe(Effect.catch(() => Effect.succeed(true)));
  while ((await Effect.runPromise(busy)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
};

/** Fails with what to do when Redis cannot be reached: checked before anything trains. */
export const reachRedis = async (url: string): Promise<void> => {
  const reached = await Effect.runPromise(Effect.result(Effect.scoped(Effect.asVoid(makeRedisBus({ url, connectTimeoutMs: 3_000 })))));
  if (reached._tag === "Failure") {
    throw new Error(`cannot reach Redis at ${url} (${reached.failure.message}): start one (redis-server --port 6379) or give --redis the URL of yours`);
  }
};

export const newDemoNamespace = (): string => `demo-${Date.now().toString(36)}`;

export const runGrownOnRedis = async (data: DigitSplit, config: GrowthConfig, options: OnRedisOptions, progress: Progress, say: (line: string) => void): Promise<GrownResult> => {
  const namespace = options.namespace ?? newDemoNamespace();
  const scope = Scope.makeUnsafe();
  let cluster: Cluster | undefined;
  let bus: RedisBus | undefined;
  try {
    bus = await Effect.runPromise(Scope.provide(makeRedisBus({ url: options.url }), scope));
    const standbys = options.standbys ?? 0;
    say(`starting ${1 + standbys} worker(s) for ${HOST_LAYERS.map((l) => l.id).join(", ")} and ${1 + standbys} Tamiyo(s) on ${options.url}, namespace ${namespace}`);
    cluster = await startCluster({
      redisUrl: options.url,
      namespace,
      layers: HOST_LAYERS.map((l) => ({ id: l.id, seeds: l.seeds })),
      profiles: layerProfiles(undefined, config.guards),
      strategy: config.strategy,
      decideEveryTicks: decideEveryTicksOf(config),
      standbys,
      // Role changes are worth a line (a takeover above all); the rest stays in the processes' tails.
      onLog: (name, line) => {
        const role = /: ((layer \S+: )?(owner|standby) .*|leading .*|standing by .*)$/.exec(line);
        if (role) say(`  ${name}: ${role[1]}`);
      },
    });
    options.onCluster?.(cluster);
    say(`  every process is up; watch them with: esper status --redis ${options.url} --namespace ${namespace}`);
    return await runGrownRemote(data, config, { bus, namespace, decisions: cluster.decisions, ...(options.afterStep ? { afterStep: options.afterStep } : {}) }, progress);
  } finally {
    if (cluster !== undefined) {
      // Tamiyo first, then what she sent is applied before the workers stop.
      await cluster.stop("tamiyo");
      if (bus !== undefined) await drained(bus, namespace, 10_000);
      await cluster.stop();
    }
    if (!options.keep && bus !== undefined) {
      const names = streams(namespace);
      const keys = HOST_LAYERS.flatMap((l) => Object.values(layerKeys(names, l.id)).filter((k): k is string => typeof k === "string" && k.startsWith(`${namespace}.`)));
      const lease = tamiyoLeaseKeys(namespace);
      await Effect.runPromise(Effect.ignore(bus.del([...new Set([...keys, names.coordination, names.controlAll, names.dlqAll, lease.key, lease.counter])])));
    } else if (options.keep) say(`kept the run's keys in namespace ${namespace}`);
    await Effect.runPromise(Scope.close(scope, Exit.void));
  }
};
