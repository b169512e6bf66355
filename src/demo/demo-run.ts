/**
 * The demo as a function: starts the backend, loads the digits, trains the host alone and then
 * the host under Tamiyo, and returns the run's record. `esper demo` prints and renders it; tests
 * read it.
 */
import { initBackend } from "../kasmina/backend.ts";
import type { Strategy } from "../tamiyo/config.ts";
import { GROWTH_DEFAULTS, GROWTH_QUICK, runGrown, runHost, type GrowthConfig } from "./growth.ts";
import { loadDigits } from "./mnist.ts";
import { reachRedis, runGrownOnRedis, type OnRedisOptions } from "./on-redis.ts";
import { hostParameterCount, HOST_LAYERS } from "./model.ts";
import type { DecisionEntry, DemoRecord, EpochPoint } from "./record.ts";

export interface DemoProgress {
  readonly onStart?: (run: string, epochs: number, stepsPerEpoch: number) => void;
  readonly onStep?: (run: string, step: number) => void;
  readonly onEpoch?: (run: string, point: EpochPoint, epochs: number) => void;
  readonly onDecision?: (entry: DecisionEntry) => void;
}

export interface DemoOptions {
  readonly quick?: boolean;
  readonly epochs?: number;
  readonly seed?: number;
  readonly strategy?: Strategy;
  readonly say?: (line: string) => void;
  readonly progress?: DemoProgress;
  /** Run the grown arm across processes on Redis (`esper demo --redis`); default: in process on the embedded bus. */
  readonly redis?: OnRedisOptions;
}

export const demoConfig = (options: DemoOptions): GrowthConfig => {
  const base = options.quick ? GROWTH_QUICK : GROWTH_DEFAULTS;
  return {
    ...base,
    ...(options.epochs !== undefined ? { epochs: options.epochs } : {}),
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    ...(options.strategy ? { strategy: options.strategy } : {}),
  };
};

export const runDemoRecord = async (options: DemoOptions = {}): Promise<DemoRecord> => {
  const say = options.say ?? (() => {});
  const config = demoConfig(options);
  // Across processes, Redis is needed at the grown arm: find out before the host arm trains.
  if (options.redis) await reachRedis(options.redis.url);
  const backend = await initBackend();
  const data = loadDigits(config.sizes, config.seed);
  const startedAt = new Date().toISOString();
  const perEpoch = Math.ceil(config.sizes.train / config.batchSize);
  const progress = {
    onStep: (run: string, step: number) => options.progress?.onStep?.(run, step),
    onEpoch: (run: string, point: EpochPoint) => options.progress?.onEpoch?.(run, point, config.epochs),
    ...(options.progress?.onDecision ? { onDecision: options.progress.onDecision } : {}),
  };
  try {
    say(`training the host alone (${HOST_LAYERS.map((l) => `${l.id} ${l.units}`).join(" -> ")} -> 10, ${hostParameterCount()} parameters) for ${config.epochs} epochs`);
    options.progress?.onStart?.("host", config.epochs, perEpoch);
    const host = await runHost(data, config, progress);
    say(`training the same host under Tamiyo (strategy ${config.strategy})${options.redis ? ", the layers owned by esper workers and Tamiyo in her own process" : ""}`);
    // Processes first: their start is not the grown run's first epoch.
    const grown = options.redis
      ? await runGrownOnRedis(data, config, { ...options.redis, onCluster: (cluster) => (options.redis?.onCluster?.(cluster), options.progress?.onStart?.("grown", config.epochs, perEpoch)) }, progress, say)
      : (options.progress?.onStart?.("grown", config.epochs, perEpoch), await runGrown(data, config, progress));
    const culled = grown.seeds.filter((s) => s.steps.some((x) => x.state === "CULLED" || x.state === "ROLLED_BACK")).length;
    return {
      title: "esper demo: a network grown by Tamiyo on MNIST digits",
      startedAt,
      config: {
        host: `784 -> ${HOST_LAYERS.map((l) => `${l.id} ${l.units} (${l.activation}, ${l.seeds} seeds)`).join(" -> ")} -> 10`,
        train: config.sizes.train,
        validation: config.sizes.validation,
        test: config.sizes.test,
        epochs: config.epochs,
        batch_size: config.batchSize,
        learning_rate: config.learningRate,
        seed: config.seed,
        strategy: config.strategy,
        steps_per_tick: config.tickEvery,
        steps_per_decision: config.decideEvery,
        backend: backend.active,
        topology: options.redis ? `across processes on Redis (${1 + (options.redis.standbys ?? 0)} worker(s) and Tamiyo(s))` : "in process, embedded bus",
      },
      host,
      grown: grown.run,
      seeds: grown.seeds,
      decisions: grown.decisions,
      alerts: grown.alerts,
      summary: {
        hostAcc: host.finalTestAcc,
        grownAcc: grown.run.finalTestAcc,
        deltaPts: (grown.run.finalTestAcc - host.finalTestAcc) * 100,
        paramsHost: host.params,
        paramsGrown: grown.run.params,
        germinated: grown.germinated,
        fossilized: grown.fossils.length,
        culled,
      },
    };
  } finally {
    data.dispose();
  }
};
