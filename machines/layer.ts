/**
 * The layer machine: owns its seeds (spawned children, or actors a host made with the layer as
 * their parent), routes commands to them, runs batches atomically, and handles emergency stop.
 * Pure: it reads its seeds' snapshots and sends to them, and everything the world must hear is
 * emitted (`dispatched`, `result`, `stopped`...), so the host (src/runtime/) turns emissions into
 * state-table writes and protocol messages.
 *
 * How a command is answered: every seed a command reaches answers with its own `outcome`
 * emission; the layer itself emits `result` for what it refuses before any seed sees it
 * (unknown seed, emergency stop, a rejected atomic batch). All of it happens synchronously
 * inside the one `send` that delivered the command, so the host can gather the answer there.
 */
import { assign, emit, enqueueActions, sendTo, setup, transition, type ActorRefFrom, type AnyActorLogic, type AnyActorRef, type SnapshotFrom } from "xstate";
import {
  ACTIVE_STATES,
  DEFAULT_GUARDS,
  GROWTH_STATES,
  isTerminal,
  type GraftingStrategy,
  type GuardConfig,
  type ResultCode,
  type SeedState,
} from "./lifecycle.ts";
import type { Metrics } from "./seed-rules.ts";
import { requestTransition, seedMachine, type SeedActorRef, type SeedOutcome, type SeedSnapshot, type TransitionRequest } from "./seed.ts";

export interface LifecycleOrder {
  readonly kind: "lifecycle";
  readonly commandId: string;
  /** null = every seed of the layer. */
  readonly seedId: number | null;
  readonly target: SeedState;
  readonly force?: boolean;
  readonly metrics?: Metrics;
  readonly reason?: string;
  readonly at?: number;
}

export interface BlueprintOrder {
  readonly kind: "blueprint";
  readonly commandId: string;
  readonly seedId: number;
  readonly blueprintId: string;
  readonly strategy?: GraftingStrategy;
}

export type SeedOrder = LifecycleOrder | BlueprintOrder;

export type LayerEvent =
  | { readonly type: "command"; readonly order: SeedOrder }
  | {
      readonly type: "batch";
      readonly commandId: string;
      readonly orders: readonly SeedOrder[];
      readonly atomic: boolean;
      readonly stopOnError: boolean;
    }
  | { readonly type: "emergency_stop"; readonly commandId: string; readonly seedId: number | null; readonly reason: string; readonly at?: number }
  | { readonly type: "resume"; readonly commandId: string }
  /** Elapsed epochs for every seed: one event per layer per tick. */
  | { readonly type: "tick"; readonly epochs: number }
  /** Metrics for some seeds, keyed by seed id: one event per layer per window. */
  | { readonly type: "metrics"; readonly bySeed: Readonly<Record<number, Metrics>> }
  | { readonly type: "seed.error"; readonly seedId: number }
  | { readonly type: "seed.restart"; readonly seedId: number; readonly logic: AnyActorLogic };

/** Why a layer refused an order itself, or how a batch went, for the host to report. */
export interface LayerResult {
  readonly type: "result";
  readonly commandId: string;
  readonly seedId: number | null;
  readonly ok: boolean;
  readonly code: ResultCode;
  readonly error: string | null;
  readonly details: Readonly<Record<string, unknown>>;
}

export type LayerEmitted =
  /** Which seeds an order went to, in order; their outcomes follow from the seeds. */
  | { readonly type: "dispatched"; readonly commandId: string; readonly seeds: readonly number[] }
  | LayerResult
  | { readonly type: "stopped"; readonly commandId: string; readonly reason: string }
  | { readonly type: "resumed"; readonly commandId: string }
  | { readonly type: "seed.crashed"; readonly seedId: number; readonly error: unknown };

export interface LayerInput {
  readonly layerId: string;
  readonly numSeeds: number;
  readonly guards?: GuardConfig;
  /**
   * Makes the seed actors, given the layer's own ref (their parent), instead of spawning them as
   * children. A host with many seeds wants this: XState stops children one at a time, copying the
   * map of all children each time, so stopping a layer of n spawned seeds costs O(n^2) (2 s at
   * 1,000 seeds). Seeds made here still report a crash to the layer (their parent); the host
   * starts and stops them. Default: spawn them.
   */
  readonly makeSeeds?: (layer: AnyActorRef, guards: GuardConfig) => readonly SeedActorRef[];
}

export interface LayerContext {
  readonly layerId: string;
  readonly numSeeds: number;
  readonly guards: GuardConfig;
  readonly seeds: readonly SeedActorRef[];
  readonly stopReason: string | null;
}

export const seedActorId = (seedId: number): string => `seed-${seedId}`;

const refuse = (commandId: string, seedId: number | null, code: ResultCode, error: string, details: Record<string, unknown> = {}): LayerResult => ({
  type: "result",
  commandId,
  seedId,
  ok: false,
  code,
  error,
  details,
});

const stateOfRef = (ref: SeedActorRef): SeedState => ref.getSnapshot().value as SeedState;

/**
 * Checks the parts of an order the layer owns: the seed exists, the layer is not stopped,
 * blueprints only on live seeds. Exported so a host may deliver an order that passes it straight
 * to its seed (see LayerHost.apply): the rule stays here, in one place.
 */
export const screen = (context: LayerContext, stopped: boolean, order: SeedOrder): LayerResult | null => {
  if (order.seedId !== null && (!Number.isInteger(order.seedId) || order.seedId < 0 || order.seedId >= context.numSeeds)) {
    return refuse(order.commandId, order.seedId, "unknown_seed", `layer ${context.layerId} has seeds 0..${context.numSeeds - 1}; there is no seed ${order.seedId}`);
  }
  if (stopped && (order.kind === "blueprint" || GROWTH_STATES.has(order.target))) {
    return refuse(
      order.commandId,
      order.seedId,
      "emergency_stopped",
      `layer ${context.layerId} is emergency-stopped (${context.stopReason ?? "no reason given"}) and refuses growth; send a resume first`,
    );
  }
  if (order.kind === "blueprint") {
    const state = stateOfRef(context.seeds[order.seedId]!);
    if (isTerminal(state)) {
      return refuse(order.commandId, order.seedId, "terminal_state", `seed ${order.seedId} is ${state}, a terminal state; it takes no blueprint`);
    }
  }
  return null;
};

/** The event an order becomes for each seed it reaches. */
export const seedEventOf = (order: SeedOrder) =>
  order.kind === "lifecycle"
    ? requestTransition(order.target, {
        force: order.force ?? false,
        ...(order.metrics ? { metrics: order.metrics } : {}),
        reason: order.reason ?? "",
        commandId: order.commandId,
        ...(order.at !== undefined ? { at: order.at } : {}),
      })
    : ({ type: "blueprint", blueprintId: order.blueprintId, commandId: order.commandId, ...(order.strategy ? { strategy: order.strategy } : {}) } as const);

const targetsOf = (context: LayerContext, order: SeedOrder): number[] =>
  order.seedId === null ? Array.from({ length: context.numSeeds }, (_, i) => i) : [order.seedId];

/**
 * Pure dry run of orders against the seeds' current snapshots (XState's `transition()`),
 * chaining snapshots so that a batch moving one seed twice is judged step by step.
 * Returns, per order, the rejection of its first failing seed, or null when it would apply.
 */
export const dryRun = (
  seedLogic: AnyActorLogic,
  context: LayerContext,
  stopped: boolean,
  orders: readonly SeedOrder[],
): Array<{ readonly order: SeedOrder; readonly failure: LayerResult | null }> => {
  const snapshots = new Map<number, SeedSnapshot>();
  const snapshotOf = (seedId: number) => snapshots.get(seedId) ?? context.seeds[seedId]!.getSnapshot();
  return orders.map((order) => {
    const refused = screen(context, stopped, order);
    if (refused) return { order, failure: refused };
    if (order.kind === "blueprint") return { order, failure: null };
    let failure: LayerResult | null = null;
    for (const seedId of targetsOf(context, order)) {
      const [next, actions] = transition(seedLogic, snapshotOf(seedId), seedEventOf(order) as never) as [SeedSnapshot, Array<{ params?: { event?: SeedOutcome } }>];
      const outcome = actions.map((a) => a.params?.event).find((e): e is SeedOutcome => e?.type === "outcome");
      if (outcome && !outcome.ok) {
        failure ??= refuse(order.commandId, seedId, outcome.code, `seed ${seedId}: ${outcome.error}`, outcome.guard ? { guard: outcome.guard, values: outcome.values } : {});
      } else {
        snapshots.set(seedId, next);
      }
    }
    return { order, failure };
  });
};

export const layerMachine = setup({
  types: {
    context: {} as LayerContext,
    events: {} as LayerEvent,
    input: {} as LayerInput,
    emitted: {} as LayerEmitted,
  },
  actors: { seed: seedMachine },
  actions: {
    /** Routes one order to its seed(s), or refuses it. */
    route: enqueueActions(({ context, event, enqueue, self }) => {
      if (event.type !== "command") return;
      const refused = screen(context, self.getSnapshot().matches("stopped"), event.order);
      if (refused) {
        enqueue.emit(refused);
        return;
      }
      const seeds = targetsOf(context, event.order);
      enqueue.emit({ type: "dispatched", commandId: event.order.commandId, seeds });
      const seedEvent = seedEventOf(event.order);
      for (const seedId of seeds) enqueue.sendTo(context.seeds[seedId]!, seedEvent as never);
    }),
    /** Atomic: dry-run every order, then apply all or none. Otherwise apply in order, stopping at the first failure if asked. */
    runBatch: enqueueActions(({ context, event, enqueue, self }) => {
      if (event.type !== "batch") return;
      const stopped = self.getSnapshot().matches("stopped");
      const verdicts = dryRun(self.getSnapshot().machine.implementations.actors.seed as AnyActorLogic, context, stopped, event.orders);
      const firstFailure = verdicts.findIndex((v) => v.failure !== null);
      const summary = verdicts.map((v, index) => ({
        index,
        command_id: v.order.commandId,
        seed_id: v.order.seedId,
        would_apply: v.failure === null,
        ...(v.failure ? { code: v.failure.code, error: v.failure.error } : {}),
      }));
      if (event.atomic && firstFailure >= 0) {
        const failed = verdicts[firstFailure]!.failure!;
        enqueue.emit(
          refuse(event.commandId, null, failed.code, `atomic batch rejected, nothing applied: command ${firstFailure} failed: ${failed.error}`, {
            results: summary.map((s) => ({ ...s, applied: false })),
          }),
        );
        return;
      }
      const applyCount = !event.atomic && event.stopOnError && firstFailure >= 0 ? firstFailure + 1 : verdicts.length;
      for (let i = 0; i < applyCount; i++) {
        const { order, failure } = verdicts[i]!;
        if (failure && failure.code !== "invalid_transition" && failure.code !== "guard_failed" && failure.code !== "terminal_state") {
          // Refused by the layer itself (unknown seed, stopped): no seed will answer, so the layer does.
          enqueue.emit(failure);
          continue;
        }
        const seeds = targetsOf(context, order);
        enqueue.emit({ type: "dispatched", commandId: order.commandId, seeds });
        const seedEvent = seedEventOf(order);
        for (const seedId of seeds) enqueue.sendTo(context.seeds[seedId]!, seedEvent as never);
      }
      for (let i = applyCount; i < verdicts.length; i++) {
        enqueue.emit(refuse(verdicts[i]!.order.commandId, verdicts[i]!.order.seedId, "internal", "skipped: an earlier command of the batch failed (stop_on_error)", { skipped: true }));
      }
    }),
    /** GERMINATED and TRAINING seeds are cancelled, active ones rolled back; terminal and dormant seeds stay. */
    stopSeeds: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "emergency_stop") return;
      const seeds = event.seedId === null ? targetsOf(context, { kind: "lifecycle", commandId: "", seedId: null, target: "CANCELLED" }) : [event.seedId];
      const moved: number[] = [];
      const requests: Array<[number, TransitionRequest]> = [];
      for (const seedId of seeds) {
        const state = stateOfRef(context.seeds[seedId]!);
        const target: SeedState | null =
          state === "GERMINATED" || state === "TRAINING" ? "CANCELLED" : ACTIVE_STATES.has(state) ? "ROLLED_BACK" : null;
        if (target === null) continue;
        moved.push(seedId);
        requests.push([
          seedId,
          requestTransition(target, {
            force: true,
            reason: `emergency stop: ${event.reason}`,
            commandId: event.commandId,
            ...(event.at !== undefined ? { at: event.at } : {}),
          }),
        ]);
      }
      enqueue.emit({ type: "dispatched", commandId: event.commandId, seeds: moved });
      for (const [seedId, request] of requests) enqueue.sendTo(context.seeds[seedId]!, request as never);
    }),
    /** The data plane saw an error in one seed: the seed counts it (the cull validator reads the count). */
    errorToSeed: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "seed.error") return;
      const seed = context.seeds[event.seedId];
      if (seed) enqueue.sendTo(seed, { type: "error" });
    }),
    tickSeeds: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "tick") return;
      const tick = { type: "tick", epochs: event.epochs } as const;
      for (const seed of context.seeds) enqueue.sendTo(seed, tick);
    }),
    metricsToSeeds: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "metrics") return;
      for (const [id, metrics] of Object.entries(event.bySeed)) {
        const seed = context.seeds[Number(id)];
        if (seed) enqueue.sendTo(seed, { type: "metrics", metrics });
      }
    }),
    reportCrash: emit(({ event }) => ({
      type: "seed.crashed" as const,
      seedId: Number(String((event as { type: string }).type).slice("xstate.error.actor.seed-".length)),
      error: (event as unknown as { error: unknown }).error,
    })),
    /** Replaces a crashed seed with one resumed from its last persisted snapshot (see resumeSeed). */
    respawn: assign({
      seeds: ({ context, event, spawn }) => {
        if (event.type !== "seed.restart") return context.seeds;
        const seeds = context.seeds.slice();
        // The typed spawner only knows the registered "seed" source; a resumed seed is its own logic.
        const spawnLogic = spawn as unknown as (logic: AnyActorLogic, options: { id: string; input: unknown }) => SeedActorRef;
        seeds[event.seedId] = spawnLogic(event.logic, { id: seedActorId(event.seedId), input: { seedId: event.seedId, config: context.guards } });
        return seeds;
      },
    }),
  },
}).createMachine({
  id: "layer",
  context: ({ input, spawn, self }) => {
    const guards = input.guards ?? DEFAULT_GUARDS;
    return {
      layerId: input.layerId,
      numSeeds: input.numSeeds,
      guards,
      seeds: input.makeSeeds
        ? input.makeSeeds(self, guards)
        : Array.from({ length: input.numSeeds }, (_, seedId) => spawn("seed", { id: seedActorId(seedId), input: { seedId, config: guards } })),
      stopReason: null,
    };
  },
  initial: "running",
  on: {
    command: { actions: "route" },
    batch: { actions: "runBatch" },
    tick: { actions: "tickSeeds" },
    metrics: { actions: "metricsToSeeds" },
    "seed.error": { actions: "errorToSeed" },
    "xstate.error.actor.*": { actions: "reportCrash" },
    "seed.restart": { actions: "respawn" },
  },
  states: {
    running: {
      on: {
        emergency_stop: [
          {
            // A stop for the whole layer also closes it to growth until resumed.
            guard: ({ event }) => event.seedId === null,
            target: "stopped",
            actions: [
              "stopSeeds",
              assign({ stopReason: ({ event }) => event.reason }),
              emit(({ event }) => ({ type: "stopped" as const, commandId: event.commandId, reason: event.reason })),
            ],
          },
          { actions: "stopSeeds" },
        ],
        resume: { actions: emit(({ event }) => ({ type: "resumed" as const, commandId: event.commandId })) },
      },
    },
    stopped: {
      on: {
        // A second stop while stopped still sweeps the seeds (a seed restarted meanwhile is caught too).
        emergency_stop: { actions: "stopSeeds" },
        resume: {
          target: "running",
          actions: [assign({ stopReason: null }), emit(({ event }) => ({ type: "resumed" as const, commandId: event.commandId }))],
        },
      },
    },
  },
});

export type LayerMachine = typeof layerMachine;
export type LayerActorRef = ActorRefFrom<LayerMachine>;
export type LayerSnapshot = SnapshotFrom<LayerMachine>;
