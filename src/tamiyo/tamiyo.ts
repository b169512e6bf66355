/**
 * Tamiyo at run time: the controller machine (machines/controller.ts) as a live actor whose
 * policy actor is Tamiyo's policy (policy.ts). Telemetry comes from the layers' telemetry
 * streams in group `tamiyo` (the machine buffers it); transitions and results come from the
 * layers' event streams (through `link`); commands go out through `link.send`. Every decision
 * is logged with the numbers that caused it, and its answer is added when it comes.
 *
 * Rounds: `round()` catches up with the telemetry written so far, runs one decision and waits
 * for every command it sent to be answered, so a training loop that calls it at fixed steps
 * gets the same decisions on every run. `decideEveryMs` runs rounds on its own instead (a
 * Tamiyo of its own process).
 */
import { Clock, Effect, type Scope } from "effect";
import { createActor, fromPromise, waitFor } from "xstate";
import { controllerMachine, type Decision, type PolicyInput as MachinePolicyInput } from "../../machines/controller.ts";
import { isTerminal, type SeedState } from "../../machines/lifecycle.ts";
import type { Bus, BusError } from "../bus/bus.ts";
import type { Command, CommandResult, PerformanceAlert, StateTransitionEvent } from "../protocol/messages.ts";
import { streams } from "../protocol/streams.ts";
import { makeTelemetryConsumer } from "../telemetry/consumer.ts";
import type { TelemetryFrame } from "../telemetry/frame.ts";
import { commandOf, populationCommands } from "./commands.ts";
import { resolveTamiyoConfig, type ResolvedTamiyoConfig, type TamiyoConfig } from "./config.ts";
import { decide, type AlertView, type KindOutcome, type Plan } from "./policy.ts";
import { Population, selectSeeds, type LayerProfile, type SelectionCriteria } from "./population.ts";

/** What Tamiyo hears from the layers' event streams: an EsperSystem's events, or a client's. */
export type LinkEvent =
  | { readonly type: "transition"; readonly event: StateTransitionEvent }
  | { readonly type: "result"; readonly result: CommandResult }
  | { readonly type: string };

/** How Tamiyo reaches the layers. An EsperSystem is one. */
export interface TamiyoLink {
  readonly send: (command: Command) => Promise<CommandResult>;
  readonly subscribe: (listener: (event: LinkEvent) => void) => () => void;
}

export interface TamiyoOptions {
  readonly bus: Bus;
  readonly link: TamiyoLink;
  readonly layers: readonly LayerProfile[];
  readonly config?: TamiyoConfig;
  readonly namespace?: string;
  /** `source` of Tamiyo's commands. Default "tamiyo". */
  readonly source?: string;
  /** Run a round every this many ms on its own. Default: never (the caller calls `round()`). */
  readonly decideEveryMs?: number;
  /** Every decision as it is made, and again when its answer came (`outcome` set). */
  readonly onDecision?: (entry: DecisionLogEntry) => void;
  /**
   * Turns telemetry into alerts (aggregation and anomaly detection); called with every frame
   * and once per round with the time. Alerts it returns are weighed by the policy and handed
   * to `onAlert` (e.g. to publish them on the event stream).
   */
  readonly alerts?: AlertSource;
  readonly onAlert?: (alert: PerformanceAlert) => void;
}

export interface AlertSource {
  readonly add: (frame: TelemetryFrame) => void;
  readonly flush: (nowMs: number) => readonly PerformanceAlert[];
}

export interface DecisionLogEntry extends Plan {
  /** When it was decided, ms since the epoch (Tamiyo's clock). */
  readonly at: number;
  /** The layer's tick count then. */
  readonly tick: number;
  readonly commandId: string;
  outcome?: { readonly success: boolean; readonly code: string; readonly error: string | null };
}

export interface TamiyoStats {
  readonly rounds: number;
  readonly decisions: number;
  readonly refused: number;
  readonly timedOut: number;
  readonly alerts: number;
  readonly framesDropped: number;
}

export interface PopulationResult {
  readonly selected: readonly number[];
  readonly transitioned: number;
  readonly failed: number;
  readonly results: readonly CommandResult[];
}

export interface Tamiyo {
  /** Catches up with telemetry, decides once, sends, and waits for the answers. Resolves with what was decided. */
  readonly round: () => Promise<readonly DecisionLogEntry[]>;
  /** Every decision so far, oldest first. */
  readonly log: () => readonly DecisionLogEntry[];
  readonly population: Population;
  /** What Tamiyo learned about blueprint kinds from the seeds it decided. */
  readonly outcomes: () => readonly KindOutcome[];
  readonly config: ResolvedTamiyoConfig;
  readonly stats: () => TamiyoStats;
  /** The reference's transition_population: seeds of a layer picked by `criteria`, moved in batches. */
  readonly transitionPopulation: (layerId: string, target: SeedState, criteria?: SelectionCriteria, batchSize?: number) => Promise<PopulationResult>;
}

const idAfterOrAt = (a: string, b: string): boolean => {
  const [am, as] = a.split("-").map(Number) as [number, number];
  const [bm, bs] = b.split("-").map(Number) as [number, number];
  return am > bm || (am === bm && (as ?? 0) >= (bs ?? 0));
};

export const makeTamiyo = (options: TamiyoOptions): Effect.Effect<Tamiyo, BusError, Scope.Scope> =>
  Effect.gen(function* () {
    const config = resolveTamiyoConfig(options.config);
    const source = options.source ?? "tamiyo";
    const clock = yield* Clock.Clock;
    const now = () => clock.currentTimeMillisUnsafe();
    const context = yield* Effect.context<never>();
    const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromiseWith(context)(effect);
    const population = new Population(options.layers);
    const names = streams(options.namespace);
    const log: DecisionLogEntry[] = [];
    const byCommand = new Map<string, DecisionLogEntry>();
    const outcomes: KindOutcome[] = [];
    let pendingAlerts: AlertView[] = [];
    const counts = { rounds: 0, decisions: 0, refused: 0, timedOut: 0, alerts: 0 };
    const inflight = new Set<Promise<void>>();
    const notify = (entry: DecisionLogEntry) => {
      try {
        options.onDecision?.(entry);
      } catch {
        // the listener's failure is its own
      }
    };

    const costOf = (layerId: string, blueprint: string | null) => options.layers.find((l) => l.layerId === layerId)?.blueprints.find((k) => k.id === blueprint)?.params ?? 0;

    /** The policy actor: absorbs the telemetry the machine buffered, then decides. */
    const policy = fromPromise<readonly Decision[], MachinePolicyInput>(async ({ input }) => {
      for (const report of input.telemetry as TelemetryFrame[]) {
        population.observe(report);
        options.alerts?.add(report);
      }
      for (const alert of options.alerts?.flush(now()) ?? []) {
        counts.alerts++;
        pendingAlerts.push({ layerId: alert.layer_id, seedId: alert.seed_id ?? null, severity: alert.severity, metric: alert.metric_name, value: alert.metric_value });
        if (alert.severity === "critical" && (alert.seed_id ?? null) === null) {
          const layer = population.layer(alert.layer_id);
          if (layer) layer.criticalAlerts++;
        }
        try {
          options.onAlert?.(alert);
        } catch {
          // the listener's failure is its own
        }
      }
      const plans = decide({ layers: population.all(), config, outcomes, alerts: pendingAlerts });
      pendingAlerts = [];
      const at = now();
      return plans.map((plan) => {
        const command = commandOf(plan, { source, timestamp: at / 1000, config });
        const entry: DecisionLogEntry = { ...plan, at, tick: population.layer(plan.layerId)?.tick ?? 0, commandId: command.message_id };
        log.push(entry);
        byCommand.set(command.message_id, entry);
        if (plan.seedId !== null) population.seed(plan.layerId, plan.seedId)!.busy = true;
        counts.decisions++;
        notify(entry);
        return { commandId: command.message_id, layerId: plan.layerId, timeoutMs: config.commandTimeoutMs, command };
      });
    });

    const answered = (entry: DecisionLogEntry, result: CommandResult) => {
      entry.outcome = { success: result.success, code: result.code, error: result.error };
      if (!result.success) counts.refused++;
      if (entry.seedId !== null) {
        const seed = population.seed(entry.layerId, entry.seedId);
        if (seed) {
          seed.busy = false;
          // A guard that said "not yet" may hold later; anything else is the seed failing.
          if (!result.success && result.code !== "guard_failed") seed.failures++;
          if (result.success && entry.order.type === "germinate") population.blueprint(entry.layerId, entry.seedId, entry.order.blueprint);
        }
      }
      if (entry.order.type === "stop" && result.success) population.stopped(entry.layerId, true);
      notify(entry);
    };

    const actor = createActor(controllerMachine.provide({ actors: { policy } }), { input: { now: now() } });
    actor.on("dispatch", ({ decisions }) => {
      for (const decision of decisions) {
        const entry = byCommand.get(decision.commandId)!;
        const done = options.link
          .send(decision.command as Command)
          .then(
            (result) => answered(entry, result),
            (error: unknown) => answered(entry, { success: false, code: "internal", error: String(error) } as CommandResult),
          )
          .finally(() => {
            actor.send({ type: "result", correlationId: decision.commandId });
            inflight.delete(done);
          });
        inflight.add(done);
      }
      actor.send({ type: "dispatched", at: now() });
    });
    actor.on("timeout", ({ command }) => {
      counts.timedOut++;
      const entry = byCommand.get(command.commandId);
      if (entry && entry.seedId !== null) {
        const seed = population.seed(entry.layerId, entry.seedId);
        if (seed) seed.busy = false;
      }
    });
    yield* Effect.acquireRelease(
      Effect.sync(() => actor.start()),
      () => Effect.sync(() => actor.stop()),
    );

    const unsubscribe = options.link.subscribe((event) => {
      if (event.type !== "transition") return;
      const t = (event as { event: StateTransitionEvent }).event;
      const layerId = t.layer_id;
      const seed = population.seed(layerId, t.seed_id);
      if (!seed) return;
      const to = t.to_state as SeedState;
      if (isTerminal(to) && seed.blueprint !== null && to !== "CANCELLED") {
        const improvement = to === "FOSSILIZED" ? (t.metrics_snapshot["total_improvement"] ?? seed.metrics["total_improvement"] ?? 0) : Math.min(0, seed.metrics["performance_delta"] ?? 0);
        outcomes.push({ layerId, blueprint: seed.blueprint, improvement: Number(improvement) || 0, params: costOf(layerId, seed.blueprint), fossilized: to === "FOSSILIZED" });
      }
      population.transition(layerId, t.seed_id, to);
    });
    yield* Effect.addFinalizer(() => Effect.sync(unsubscribe));

    yield* makeTelemetryConsumer(options.bus, {
      layers: options.layers.map((l) => l.layerId),
      ...(options.namespace ? { namespace: options.namespace } : {}),
      consumer: `tamiyo-${process.pid}`,
      blockMs: 50,
      onTelemetry: (content) => {
        for (const frame of content.frames) actor.send({ type: "telemetry", report: frame });
      },
    });

    /** Until group `tamiyo` has read and acked every telemetry entry written before the call. */
    const catchUp = Effect.gen(function* () {
      for (const layer of options.layers) {
        const stream = names.telemetry(layer.layerId);
        const last = yield* options.bus.lastId(stream);
        if (last === "0-0" || last === "") continue;
        for (let i = 0; i < 5_000; i++) {
          const info = yield* options.bus.groupInfo(stream, "tamiyo");
          if (info && info.pending === 0 && idAfterOrAt(info.lastDeliveredId, last)) break;
          yield* Effect.sleep(1);
        }
      }
    });

    const round = async (): Promise<readonly DecisionLogEntry[]> => {
      await run(catchUp.pipe(Effect.ignore));
      const before = log.length;
      counts.rounds++;
      actor.send({ type: "clock", now: now() });
      actor.send({ type: "decide" });
      await waitFor(actor, (s) => !s.matches("deciding") && !s.matches("commanding"));
      while (inflight.size > 0) await Promise.all([...inflight]);
      return log.slice(before);
    };

    if (options.decideEveryMs !== undefined) {
      const every = options.decideEveryMs;
      yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Effect.sleep(every), () => Effect.promise(round))));
    }

    const transitionPopulation = async (layerId: string, target: SeedState, criteria: SelectionCriteria = {}, batchSize = config.maxBatchSize): Promise<PopulationResult> => {
      const layer = population.layer(layerId);
      if (!layer) throw new RangeError(`Tamiyo steers no layer ${layerId}; it steers ${population.layerIds.join(", ")}`);
      const selected = selectSeeds(layer.seeds, target, criteria).map((s) => s.seedId);
      const commands = populationCommands(layerId, selected, target, batchSize, { source, timestamp: now() / 1000, config }, `population transition to ${target}`);
      const results: CommandResult[] = [];
      for (const command of commands) results.push(await options.link.send(command));
      let transitioned = 0;
      let failed = 0;
      for (const result of results) {
        const lines = (result.details["results"] as readonly { success?: boolean }[] | undefined) ?? [];
        for (const line of lines) line.success ? transitioned++ : failed++;
      }
      return { selected, transitioned, failed, results };
    };

    return {
      round,
      log: () => log,
      population,
      outcomes: () => outcomes,
      config,
      stats: () => ({ ...counts, framesDropped: actor.getSnapshot().context.droppedTelemetry }),
      transitionPopulation,
    } satisfies Tamiyo;
  });
