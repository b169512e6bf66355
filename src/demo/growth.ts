/**
 * The demo's experiment, shared by `esper demo` and the `growth` benchmark: the same host, data
 * and batches for every arm.
 * - host: the host alone (its seeds stay dormant);
 * - grown: the host under Tamiyo, in process on the embedded bus: the trainer ticks the layers
 *   and reports their telemetry, a held-out evaluator measures every grafted seed with its
 *   blueprint on and off, Tamiyo reads all of it from the telemetry streams and steers;
 * - static (benchmark only): the grown network's final architecture trained from scratch: the
 *   host with the blueprints blended in at the end of the grown run in place and learning from
 *   the first step, as ordinary layers would.
 */
import { Effect, Exit, Scope } from "effect";
import type { GuardOverrides, SeedState } from "../../machines/lifecycle.ts";
import { MemoryBus } from "../bus/memory-bus.ts";
import { blueprintIndex } from "../kasmina/blueprints.ts";
import { blendsInState } from "../kasmina/seed-roles.ts";
import { KasminaTrainer } from "../kasmina/trainer.ts";
import { makeSystem } from "../runtime/system.ts";
import { layerSpecOf, trainerHooks, type LayerReports, type SystemHooks } from "../runtime/trainer-hooks.ts";
import type { Strategy, TamiyoConfig } from "../tamiyo/config.ts";
import { makeTamiyo } from "../tamiyo/tamiyo.ts";
import { publishAlerts, telemetryAlerts } from "../telemetry/alerts.ts";
import { makeTelemetryPublisher } from "../telemetry/publisher.ts";
import type { DigitSplit, SplitSizes } from "./mnist.ts";
import { buildHost, layerProfiles, type HostNetwork } from "./model.ts";
import { HeldOutEvaluator } from "./held-out.ts";
import { RunJournal } from "./journal.ts";
import type { AlertEntry, DecisionEntry, EpochPoint, RunRecord, SeedTimeline } from "./record.ts";
import { train } from "./train.ts";

export interface GrowthConfig {
  /** Random seed of the split, the initial weights and the batch order. */
  readonly seed: number;
  readonly epochs: number;
  readonly sizes: SplitSizes;
  readonly batchSize: number;
  readonly learningRate: number;
  /** Training steps per tick: the unit the seeds' minimum dwell (DEFAULT_GUARDS.minEpochs) counts. */
  readonly tickEvery: number;
  /** Steps per telemetry window (the trainer's telemetryEvery). */
  readonly telemetryEvery: number;
  /** Steps between held-out measurements of the grafted seeds. */
  readonly measureEvery: number;
  /** Steps between Tamiyo's decision rounds. */
  readonly decideEvery: number;
  readonly strategy: Strategy;
  readonly tamiyo?: TamiyoConfig;
  readonly guards?: GuardOverrides;
}

export const GROWTH_DEFAULTS: GrowthConfig = {
  seed: 1,
  epochs: 32,
  sizes: { train: 8_000, validation: 1_000, test: 1_000 },
  batchSize: 64,
  learningRate: 0.005,
  tickEvery: 2,
  telemetryEvery: 5,
  measureEvery: 10,
  decideEvery: 10,
  strategy: "aggressive",
};

/** A short run for tests: a quarter of the data, one step a tick. */
export const GROWTH_QUICK: GrowthConfig = {
  ...GROWTH_DEFAULTS,
  epochs: 12,
  sizes: { train: 2_000, validation: 500, test: 500 },
  tickEvery: 1,
  telemetryEvery: 5,
  measureEvery: 5,
  decideEvery: 5,
  strategy: "aggressive",
};

export interface Progress {
  readonly onStep?: (run: string, step: number, stepsPerEpoch: number, epoch: number) => void;
  readonly onEpoch?: (run: string, point: EpochPoint) => void;
  readonly onDecision?: (entry: DecisionEntry) => void;
}

export interface GrownSeed {
  readonly layerId: string;
  readonly seedId: number;
  readonly blueprint: string;
}

export interface GrownResult {
  readonly run: RunRecord;
  readonly seeds: readonly SeedTimeline[];
  readonly decisions: readonly DecisionEntry[];
  readonly alerts: readonly AlertEntry[];
  /** Seeds that fossilized, with their kinds. */
  readonly fossils: readonly GrownSeed[];
  /**
   * The grown network's final architecture: every seed whose blueprint is blended in when the
   * run ends (the fossils, and any still fine-tuning). The static arm trains exactly this.
   */
  readonly architecture: readonly GrownSeed[];
  readonly germinated: number;
  readonly culled: number;
}

export const stepsPerEpochOf = (config: GrowthConfig) => Math.ceil(config.sizes.train / config.batchSize);

/** Trains `network` as one arm of the experiment, then disposes it. */
const trainArm = async (name: string, network: HostNetwork, data: DigitSplit, config: GrowthConfig, progress: Progress): Promise<RunRecord> => {
  try {
    return await train(network, data, {
      name,
      seed: config.seed,
      epochs: config.epochs,
      batchSize: config.batchSize,
      learningRate: config.learningRate,
      onStep: (s, per, e) => progress.onStep?.(name, s, per, e),
      onEpoch: (p) => progress.onEpoch?.(name, p),
    });
  } finally {
    network.model.dispose();
  }
};

/** The host alone. */
export const runHost = (data: DigitSplit, config: GrowthConfig, progress: Progress = {}): Promise<RunRecord> => trainArm("host", buildHost(config.seed), data, config, progress);

/** The static arm: the grown network's final blueprints in place (FINE_TUNING: blended in full and learning) from the first step. */
export const runStatic = (data: DigitSplit, config: GrowthConfig, architecture: GrownResult["architecture"], progress: Progress = {}): Promise<RunRecord> => {
  const network = buildHost(config.seed);
  try {
    for (const seed of architecture) {
      const layer = network.layers.find((l) => l.layerId === seed.layerId)!;
      layer.table.write(seed.seedId, { state: "FINE_TUNING", blueprint: blueprintIndex(seed.blueprint), alpha: 1 });
    }
  } catch (error) {
    network.model.dispose();
    throw error;
  }
  return trainArm("static", network, data, config, progress);
};

/** What the demo's anomaly detector watches: the signals of a layer going wrong (exploding gradients, activations running away). */
const ALERT_METRICS = ["gradient_norm", "activation_norm"];
const ALERT_MS_PER_STEP = 100;
const ALERT_WINDOW_STEPS = 20;

export const runGrown = async (data: DigitSplit, config: GrowthConfig, progress: Progress = {}): Promise<GrownResult> => {
  const network = buildHost(config.seed);
  const scope = Scope.makeUnsafe();
  const perEpoch = stepsPerEpochOf(config);
  let step = 0;
  const journal = new RunJournal(network, () => step / perEpoch);
  try {
    const guards = config.guards;
    const open = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Scope.provide(effect, scope));
    const bus = new MemoryBus();
    const system = await open(makeSystem({ layers: network.layers.map((l) => layerSpecOf(l, guards ? { guards } : {})), bus, source: "demo" }));
    const publisher = await open(makeTelemetryPublisher(bus, { source: "demo.telemetry", batchWindowMs: 0 }));
    system.subscribe((event) => event.type === "transition" && journal.transition(event.event));
    // Windows of the anomaly detector in training steps (ALERT_MS_PER_STEP virtual ms a step), not wall time: the same run raises the same alerts.
    const stepClock = () => step * ALERT_MS_PER_STEP;
    const watch = telemetryAlerts({
      aggregator: { now: stepClock, windowMs: ALERT_WINDOW_STEPS * ALERT_MS_PER_STEP },
      // A norm that falls (a decaying learning rate, a graft taking over) is no trouble; one that rises is.
      anomaly: { metrics: ALERT_METRICS, direction: () => "lower_is_better" },
    });
    const tamiyo = await open(
      makeTamiyo({
        bus,
        link: system,
        layers: layerProfiles(undefined, guards),
        config: { strategy: config.strategy, ...config.tamiyo },
        alerts: { add: watch.add, flush: () => watch.flush(stepClock()) },
        onAlert: (alert) => {
          journal.alert(alert);
          void Effect.runPromise(publishAlerts(bus, [alert]).pipe(Effect.ignore));
        },
        onDecision: (d) => {
          const entry = journal.decision(d);
          if (entry) progress.onDecision?.(entry);
        },
      }),
    );
    const hooks = trainerHooks(system, { telemetry: publisher.sink });
    const run = await trainGrown(network, data, config, system, hooks, progress, async (s, trainer, heldOut) => {
      step = s;
      await trainer.afterStep();
      if (s % config.measureEvery === 0) await heldOut.measure();
      if (s % config.decideEvery === 0) {
        await hooks.settled();
        await Effect.runPromise(publisher.flush);
        await tamiyo.round();
      }
    });
    await hooks.settled();
    return grownResult(run, journal, network);
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void));
    network.model.dispose();
  }
};

/**
 * The grown arm's training: a KasminaTrainer whose reports go through `hooks`, a held-out evaluator and each epoch's
 * validation loss reporting to `reports`; `afterStep` says what each step does with them (in process, Tamiyo's
 * rounds; across processes, the order the reports go out in).
 */
export const trainGrown = (
  network: HostNetwork,
  data: DigitSplit,
  config: GrowthConfig,
  reports: LayerReports,
  hooks: SystemHooks,
  progress: Progress,
  afterStep: (step: number, trainer: KasminaTrainer, heldOut: HeldOutEvaluator) => Promise<void>,
): Promise<RunRecord> => {
  // performance_delta is measured on held-out data (HeldOutEvaluator), not estimated from the batch.
  const trainer = new KasminaTrainer({ layers: network.layers, telemetryEvery: config.telemetryEvery, tickEvery: config.tickEvery, performanceDelta: "held_out", hooks });
  const heldOut = new HeldOutEvaluator(network, data.validation, reports);
  return train(network, data, {
    name: "grown",
    seed: config.seed,
    epochs: config.epochs,
    batchSize: config.batchSize,
    learningRate: config.learningRate,
    beforeStep: () => trainer.beforeStep(),
    afterStep: (s) => afterStep(s, trainer, heldOut),
    // The plateau signal: one validation loss per epoch (per step it would be noise).
    afterEpoch: async (point) => {
      for (const layer of network.layers) await reports.reportMetrics(layer.layerId, {}, { val_loss: point.valLoss, val_acc: point.valAcc });
    },
    onStep: (s, per, e) => progress.onStep?.("grown", s, per, e),
    onEpoch: (p) => progress.onEpoch?.("grown", p),
  });
};

/** The grown arm's result: its run, and from its journal the seeds' lifecycles, the decisions and alerts, and what grew. */
export const grownResult = (run: RunRecord, journal: RunJournal, network: HostNetwork): GrownResult => {
  const seeds = journal.seeds();
  const ended = (state: SeedState) => seeds.filter((s) => s.steps.some((x) => x.state === state));
  return {
    run,
    seeds,
    decisions: journal.decisions,
    alerts: journal.alerts,
    fossils: ended("FOSSILIZED").map((s) => ({ layerId: s.layerId, seedId: s.seedId, blueprint: s.blueprint! })),
    architecture: finalArchitecture(network),
    germinated: ended("GERMINATED").length,
    culled: ended("CULLED").length,
  };
};

/** Every seed whose blueprint is blended in now, with its kind. */
const finalArchitecture = (network: HostNetwork): GrownSeed[] =>
  network.layers.flatMap((layer) =>
    [...layer.table.state].flatMap((code, seedId) => {
      if (!blendsInState(code)) return [];
      const kind = layer.blueprintIds[layer.kindOf(layer.table.blueprint[seedId]!)];
      return kind === undefined ? [] : [{ layerId: layer.layerId, seedId, blueprint: kind }];
    }),
  );
