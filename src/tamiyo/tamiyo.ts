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
import { Clock, Data, Effect, Option, type Scope } from "effect";
import { openScoped, type Closeable } from "../runtime/scoped.ts";
import { createActor, fromPromise, waitFor } from "xstate";
import { controllerMachine, type Decision, type PolicyInput as MachinePolicyInput } from "../../machines/controller.ts";
import { isTerminal, type SeedState } from "../../machines/lifecycle.ts";
import type { Bus, BusError } from "../bus/bus.ts";
import { compareStreamIds, parseStreamId } from "../bus/stream-id.ts";
import { commandResult } from "../protocol/make.ts";
import type { Command, CommandResult, PerformanceAlert, StateTransitionEvent } from "../protocol/messages.ts";
import { streams, type Topology } from "../protocol/streams.ts";
import { makeTelemetryConsumer } from "../telemetry/consumer.ts";
import type { TelemetryFrame } from "../telemetry/frame.ts";
import { commandOf, populationCommands } from "./commands.ts";
import { resolveTamiyoConfig, TamiyoConfigError, type ResolvedTamiyoConfig, type TamiyoConfig } from "./config.ts";
import { decide, type AlertView, type KindOutcome, type Plan } from "./policy.ts";
import { TickPacer } from "./tick-pacer.ts";
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

/** What `makeTamiyo` / `startTamiyo` need: the bus, a link to the layers, their profiles, and how to decide (docs/tamiyo.md). */
export interface TamiyoOptions {
  /** The bus the layers' streams live on: Tamiyo reads their telemetry streams there, in consumer group `tamiyo`. */
  readonly bus: Bus;
  /** How commands go out and transitions and results come back: an EsperSystem is one. */
  readonly link: TamiyoLink;
  /** The layers to steer: per layer its seeds, host parameters, and the blueprint kinds that may grow there with their cost. */
  readonly layers: readonly LayerProfile[];
  /** Strategy and knobs; every value not given has its default (TAMIYO_DEFAULTS, and the strategy's). */
  readonly config?: TamiyoConfig;
  /** Key namespace P of the layers' streams. Default: ESPER_NAMESPACE, else "morphogenetic". */
  readonly namespace?: string;
  /** The layers' stream names: esper's or the reference's (docs/protocol.md). Default: ESPER_TOPOLOGY, else "esper". */
  readonly topology?: Topology;
  /** `source` of Tamiyo's commands. Default "tamiyo". */
  readonly source?: string;
  /** Run a round every this many ms on its own. Default: never (the caller calls `round()`). */
  readonly decideEveryMs?: number;
  /**
   * Run a round on her own whenever every layer she steers has reported this many more ticks
   * (the trainer's pace, not the clock: see TickPacer). Default: never.
   */
  readonly decideEveryTicks?: number;
  /** Every decision as it is made, and again when its answer came (`outcome` set). */
  readonly onDecision?: (entry: DecisionLogEntry) => void;
  /**
   * Turns telemetry into alerts (aggregation and anomaly detection); called with every frame
   * and once per round with the time. Alerts it returns are weighed by the policy and handed
   * to `onAlert` (e.g. to publish them on the event stream).
   */
  readonly alerts?: AlertSource;
  /** Every alert `alerts` raised, as Tamiyo takes it in (e.g. to write it on its event stream with `publishAlerts`); a throw is ignored. */
  readonly onAlert?: (alert: PerformanceAlert) => void;
}

export interface AlertSource {
  readonly add: (frame: TelemetryFrame) => void;
  readonly flush: (nowMs: number) => readonly PerformanceAlert[];
}

/**
 * One decision Tamiyo made: what it asked of which seed (`action`), why (`reason`), the numbers it
 * read, and, once the layer answered, the `outcome`. `Tamiyo.log()` holds them all, oldest first.
 */
export interface DecisionLogEntry extends Plan {
  /** When it was decided, ms since the epoch (Tamiyo's clock). */
  readonly at: number;
  /** The layer's tick count then. */
  readonly tick: number;
  /** The message_id of the command sent for it (the CommandResult's correlation_id). */
  readonly commandId: string;
  /** The layer's answer, set when it came: a command not answered within `commandTimeoutMs` gets code `timeout`. */
  outcome?: { readonly success: boolean; readonly code: string; readonly error: string | null };
}

/** Tamiyo's counters since it started (`Tamiyo.stats()`; docs/tamiyo.md). */
export interface TamiyoStats {
  readonly rounds: number;
  readonly decisions: number;
  readonly refused: number;
  /** Commands not answered within `commandTimeoutMs`. */
  readonly timedOut: number;
  readonly alerts: number;
  readonly framesDropped: number;
  /** Rounds that decided before group `tamiyo` had read everything written (the bus was slow or failing). */
  readonly catchUpMissed: number;
  /** Rounds whose policy failed (no decision made; the error is `lastError`). */
  readonly policyErrors: number;
  readonly lastError: string | null;
}

/** `transitionPopulation` was asked about a layer this Tamiyo does not steer (reason `unknown_layer`); its message lists those it does. */
export class TamiyoError extends Data.TaggedError("TamiyoError")<{
  readonly reason: "unknown_layer";
  readonly message: string;
}> {}

/** What `Tamiyo.transitionPopulation` did: which seeds it picked, how many moved, and each BatchCommand's answer. */
export interface PopulationResult {
  /** Ids of the seeds the criteria picked (busy seeds left out), in the order they were sent. */
  readonly selected: readonly number[];
  /** Seeds that reached the target state. */
  readonly transitioned: number;
  /** Seeds whose transition was refused, or whose batch was refused whole. */
  readonly failed: number;
  /** One CommandResult per BatchCommand sent (at most `batchSize` seeds each). */
  readonly results: readonly CommandResult[];
}

/**
 * The running controller (docs/tamiyo.md): reads the layers' telemetry and events, decides which
 * seeds germinate, move on or end, and sends those decisions as commands. Call `round()` at fixed
 * points of a training loop for reproducible decisions, or give `decideEveryMs`. Made by
 * `makeTamiyo` (Effect, in a Scope) or `startTamiyo` (Promise).
 */
export interface Tamiyo {
  /** Catches up with telemetry, decides once, sends, and waits for the answers. Resolves with what was decided. */
  readonly round: () => Promise<readonly DecisionLogEntry[]>;
  /** Every decision so far, oldest first. */
  readonly log: () => readonly DecisionLogEntry[];
  /** Tamiyo's picture of every layer and seed, built from telemetry and events. */
  readonly population: Population;
  /** What Tamiyo learned about blueprint kinds from the seeds it decided. */
  readonly outcomes: () => readonly KindOutcome[];
  /** The config in force: every default and the strategy's knobs filled in. */
  readonly config: ResolvedTamiyoConfig;
  /** Counters: rounds, decisions, refusals, timeouts, alerts, dropped frames, rounds that missed the catch-up, policy errors. */
  readonly stats: () => TamiyoStats;
  /**
   * The reference's transition_population: seeds of a layer picked by `criteria`, moved in BatchCommands of at most
   * `batchSize` (default `maxBatchSize`). Rejects with a TamiyoError for a layer Tamiyo does not steer.
   */
  readonly transitionPopulation: (layerId: string, target: SeedState, criteria?: SelectionCriteria, batchSize?: number) => Promise<PopulationResult>;
}

/** Polls of the group's progress (1 ms apart) before a round decides on what it has. */
const CATCH_UP_POLLS = 5_000;

/** Whether stream entry id `a` is `b` or later; an id that is not one (nothing delivered yet) is not. */
const idAfterOrAt = (a: string, b: string): boolean => {
  const ia = parseStreamId(a);
  const ib = parseStreamId(b);
  return ia !== undefined && ib !== undefined && compareStreamIds(ia, ib) >= 0;
};

/**
 * Starts Tamiyo in the current Scope: the controller actor, its telemetry consumer (group `tamiyo`) and, with
 * `decideEveryMs`, its rounds; all stop when the Scope closes. Fails with a BusError when the streams cannot be read;
 * a config value out of range is a RangeError naming the option. Promise code uses `startTamiyo`.
 */
export const makeTamiyo = (options: TamiyoOptions): Effect.Effect<Tamiyo, BusError | TamiyoConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    // A bad config is a failure the caller can match, not a defect.
    const config = yield* Effect.try({
      try: () => resolveTamiyoConfig(options.config),
      catch: (error) => (error instanceof TamiyoConfigError ? error : new TamiyoConfigError(String(error))),
    });
    const source = options.source ?? "tamiyo";
    const clock = yield* Clock.Clock;
    const now = () => clock.currentTimeMillisUnsafe();
    const context = yield* Effect.context<never>();
    const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromiseWith(context)(effect);
    const population = new Population(options.layers);
    const names = streams(options.namespace, options.topology);
    const log: DecisionLogEntry[] = [];
    const byCommand = new Map<string, DecisionLogEntry>();
    const outcomes: KindOutcome[] = [];
    let pendingAlerts: AlertView[] = [];
    const counts = { rounds: 0, decisions: 0, refused: 0, timedOut: 0, alerts: 0, catchUpMissed: 0, policyErrors: 0, lastError: null as string | null };
    const inflight = new Set<Promise<void>>();
    const notify = (entry: DecisionLogEntry) => {
      try {
        options.onDecision?.(entry);
      } catch {
        // the listener's failure is its own
      }
    };

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
      const alerts = pendingAlerts;
      pendingAlerts = [];
      const at = now();
      // Everything is built before anything is recorded: a plan that cannot become a command leaves no seed marked busy and no entry without a command.
      let built: { plan: Plan; command: Command }[];
      try {
        built = decide({ layers: population.all(), config, outcomes, alerts }).map((plan) => ({ plan, command: commandOf(plan, { source, timestamp: at / 1000, config }) }));
      } catch (error) {
        counts.policyErrors++;
        counts.lastError = error instanceof Error ? error.message : String(error);
        return [];
      }
      return built.map(({ plan, command }) => {
        record(plan, command, at);
        return { commandId: command.message_id, layerId: plan.layerId, timeoutMs: config.commandTimeoutMs, command };
      });
    });

    /** Logs a decision about to be sent and marks its seed busy until it is answered. */
    const record = (plan: Plan, command: Command, at: number): DecisionLogEntry => {
      const entry: DecisionLogEntry = { ...plan, at, tick: population.layer(plan.layerId)?.tick ?? 0, commandId: command.message_id };
      log.push(entry);
      byCommand.set(command.message_id, entry);
      const seed = plan.seedId === null ? undefined : population.seed(plan.layerId, plan.seedId);
      if (seed) seed.busy = true;
      counts.decisions++;
      notify(entry);
      return entry;
    };

    const answered = (entry: DecisionLogEntry, result: CommandResult) => {
      entry.outcome = { success: result.success, code: result.code, error: result.error };
      if (!result.success) counts.refused++;
      const seed = entry.seedId === null ? undefined : population.seed(entry.layerId, entry.seedId);
      if (seed) {
        seed.busy = false;
        // A guard that said "not yet" may hold later; anything else is the seed failing.
        if (!result.success && result.code !== "guard_failed") seed.failures++;
      }
      const order = entry.order;
      if (result.success && entry.seedId !== null) {
        // The result may come before the transition event (another stream, another process): the seed moved either way.
        if (order.type === "transition") population.transition(entry.layerId, entry.seedId, order.target);
        if (order.type === "germinate") {
          population.transition(entry.layerId, entry.seedId, "GERMINATED");
          population.blueprint(entry.layerId, entry.seedId, order.blueprint);
          const layer = population.layer(entry.layerId);
          if (layer) layer.criticalAlerts = 0;
        }
      }
      // A layer that does not hold a kind refuses it whichever seed asks: remember it as worth nothing there.
      if (!result.success && order.type === "germinate" && result.code === "invalid_message") {
        outcomes.push({ layerId: entry.layerId, blueprint: order.blueprint, improvement: 0, params: population.costOf(entry.layerId, order.blueprint), fossilized: false });
      }
      if (order.type === "stop" && result.success) population.stopped(entry.layerId, true);
      notify(entry);
    };

    /** The answer a command gets when its layer's cannot be had. */
    const failed = (command: Command, layerId: string, code: "timeout" | "internal", error: string): CommandResult =>
      commandResult({ source, timestamp: now() / 1000, correlation_id: command.message_id, layer_id: layerId, seed_id: null, success: false, code, error, details: {}, execution_time_ms: 0 });

    /** Sends one command and waits for its answer, `commandTimeoutMs` at most: a link that never answers cannot hold a round. */
    const sendOne = async (command: Command, layerId: string): Promise<CommandResult> => {
      const answer = await run(
        Effect.tryPromise(() => Promise.resolve().then(() => options.link.send(command))).pipe(
          Effect.timeoutOption(config.commandTimeoutMs),
          Effect.catch((error) => Effect.succeed(Option.some(failed(command, layerId, "internal", String(error.cause ?? error))))),
        ),
      );
      if (Option.isSome(answer)) return answer.value;
      counts.timedOut++;
      return failed(command, layerId, "timeout", `no answer within ${config.commandTimeoutMs} ms (commandTimeoutMs)`);
    };

    const actor = createActor(controllerMachine.provide({ actors: { policy } }), { input: { now: now() } });
    actor.on("dispatch", ({ decisions }) => {
      for (const decision of decisions) {
        const entry = byCommand.get(decision.commandId)!;
        const done = sendOne(decision.command as Command, decision.layerId)
          .then((result) => answered(entry, result))
          .finally(() => {
            actor.send({ type: "result", correlationId: decision.commandId });
            inflight.delete(done);
          });
        inflight.add(done);
      }
      actor.send({ type: "dispatched", at: now() });
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
      if (isTerminal(to) && seed.state !== to && seed.blueprint !== null && to !== "CANCELLED") {
        const improvement = to === "FOSSILIZED" ? (t.metrics_snapshot["total_improvement"] ?? seed.metrics["total_improvement"] ?? 0) : Math.min(0, seed.metrics["performance_delta"] ?? 0);
        outcomes.push({ layerId, blueprint: seed.blueprint, improvement: Number(improvement) || 0, params: population.costOf(layerId, seed.blueprint), fossilized: to === "FOSSILIZED" });
      }
      population.transition(layerId, t.seed_id, to);
    });
    yield* Effect.addFinalizer(() => Effect.sync(unsubscribe));

    // A round the pacer asks for runs after the one in progress; asked again meanwhile, it runs once.
    let roundsDue = Promise.resolve();
    let roundQueued = false;
    const roundSoon = () => {
      if (roundQueued) return;
      roundQueued = true;
      roundsDue = roundsDue.then(async () => {
        roundQueued = false;
        try {
          await round();
        } catch (error) {
          counts.policyErrors++;
          counts.lastError = String(error);
        }
      });
    };
    const every = options.decideEveryTicks;
    const pacer =
      every === undefined
        ? undefined
        : yield* Effect.try({ try: () => new TickPacer(options.layers.map((l) => l.layerId), every), catch: (error) => (error instanceof TamiyoConfigError ? error : new TamiyoConfigError(String(error))) });

    yield* makeTelemetryConsumer(options.bus, {
      layers: options.layers.map((l) => l.layerId),
      ...(options.namespace ? { namespace: options.namespace } : {}),
      ...(options.topology ? { topology: options.topology } : {}),
      consumer: `tamiyo-${process.pid}`,
      blockMs: 50,
      onTelemetry: (content) => {
        for (const frame of content.frames) {
          actor.send({ type: "telemetry", report: frame });
          if (pacer?.observe(frame.layerId, frame.performanceSummary)) roundSoon();
        }
      },
    });

    /** Until group `tamiyo` has read and acked every telemetry entry written before the call; false when it gave up (CATCH_UP_POLLS) or the bus failed. */
    const catchUp = Effect.gen(function* () {
      for (const layer of options.layers) {
        const stream = names.telemetry(layer.layerId);
        const last = yield* options.bus.lastId(stream);
        if (last === "0-0" || last === "") continue;
        let caught = false;
        for (let i = 0; i < CATCH_UP_POLLS && !caught; i++) {
          const info = yield* options.bus.groupInfo(stream, "tamiyo");
          caught = info !== undefined && info.pending === 0 && idAfterOrAt(info.lastDeliveredId, last);
          if (!caught) yield* Effect.sleep(1);
        }
        if (!caught) return false;
      }
      return true;
    }).pipe(Effect.catch(() => Effect.succeed(false)));

    const round = async (): Promise<readonly DecisionLogEntry[]> => {
      if (!(await run(catchUp))) counts.catchUpMissed++;
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
      // A round that fails is counted and the next one comes as usual: Tamiyo never stops deciding on its own.
      const safeRound = Effect.tryPromise(round).pipe(
        Effect.catch((error) =>
          Effect.sync(() => {
            counts.policyErrors++;
            counts.lastError = String(error.cause ?? error);
          }),
        ),
      );
      yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Effect.sleep(every), () => safeRound)));
    }

    const transitionPopulation = async (layerId: string, target: SeedState, criteria: SelectionCriteria = {}, batchSize = config.maxBatchSize): Promise<PopulationResult> => {
      const layer = population.layer(layerId);
      if (!layer) throw new TamiyoError({ reason: "unknown_layer", message: `Tamiyo steers no layer ${layerId}; it steers ${population.layerIds.join(", ")}` });
      const selected = selectSeeds(layer.seeds, target, criteria).filter((s) => !s.busy);
      const ids = selected.map((s) => s.seedId);
      const reason = `population transition to ${target}`;
      const at = now();
      const commands = populationCommands(layerId, ids, target, batchSize, { source, timestamp: at / 1000, config }, reason);
      const results: CommandResult[] = [];
      let transitioned = 0;
      let failures = 0;
      for (const [i, command] of commands.entries()) {
        const batch = ids.slice(i * batchSize, (i + 1) * batchSize);
        const plan: Plan = {
          kind: "advance",
          layerId,
          seedId: null,
          action: `${batch.length} seeds -> ${target}`,
          reason,
          numbers: { seeds: batch.length, batch_size: batchSize, ...(criteria.minPerformance === undefined ? {} : { min_performance: criteria.minPerformance }), ...(criteria.maxFailures === undefined ? {} : { max_failures: criteria.maxFailures }) },
          order: { type: "population", target, seeds: batch },
        };
        const entry = record(plan, command, at);
        for (const seedId of batch) population.seed(layerId, seedId)!.busy = true;
        const result = await sendOne(command, layerId);
        for (const seedId of batch) population.seed(layerId, seedId)!.busy = false;
        answered(entry, result);
        results.push(result);
        const lines = (result.details["results"] as readonly { success?: boolean; seed_id?: number }[] | undefined) ?? [];
        if (lines.length === 0) {
          // Refused whole (a stopped layer, a bad batch): every command in it failed.
          if (result.success) transitioned += batch.length;
          else failures += batch.length;
        }
        lines.forEach((line, k) => {
          if (line.success) {
            transitioned++;
            population.transition(layerId, batch[k]!, target);
          } else failures++;
        });
      }
      return { selected: ids, transitioned, failed: failures, results };
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

/** Tamiyo started from Promise code; `close()` stops her rounds and her stream readers. */
export interface RunningTamiyo extends Tamiyo, Closeable {}

/** Starts Tamiyo for Promise code (Effect code uses `makeTamiyo` in a Scope); rejects with the BusError when her streams cannot be read. */
export const startTamiyo = (options: TamiyoOptions): Promise<RunningTamiyo> => openScoped(Effect.map(makeTamiyo(options), (tamiyo) => ({ ...tamiyo })));
