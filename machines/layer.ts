/**
 * The layer machine: the one place a command to a layer is decided. It screens every order (the
 * seed exists, the layer is not stopped, a blueprint goes only to a live seed), routes what
 * passes to its seeds, runs batches atomically (a dry run first, then all or none), handles
 * emergency stop and resume, and counts the layer's epochs. Each seed then decides its own
 * transition (seed.ts, seed-rules.ts): a seed that is asked answers with an `outcome`.
 *
 * Pure: it reads its seeds' snapshots and sends to them, and everything else is emitted: a
 * `result` for whatever the layer itself refuses (unknown seed, emergency stop, a rejected
 * atomic batch, an order skipped after an earlier failure). All of it happens inside the one
 * `send` that delivered the event, so a host can gather the answer there.
 *
 * The seeds are actors the host makes (createActor, with a persisted snapshot when it restores
 * one) and hands over in `input.seeds`; the layer holds their refs. The host, not XState, stops
 * them: XState stops spawned children one at a time, copying the map of all children each time,
 * so stopping a layer of n spawned seeds was O(n^2) (2 s at 1,000 seeds).
 *
 * Whether the layer is stopped lives in one place: the machine's state (`stopped`), with the
 * reason in context.
 */
import { assign, emit, enqueueActions, sendTo, setup, transition, type ActorRefFrom, type SnapshotFrom } from "xstate";
import { ACTIVE_STATES, DEFAULT_GUARDS, GROWTH_STATES, isTerminal, recordedReason, type GraftingStrategy, type GuardConfig, type ResultCode, type SeedState } from "./lifecycle.ts";
import type { Metrics } from "./seed-rules.ts";
import { requestTransition, type SeedActorRef, type SeedOutcome, type SeedSnapshot, type TransitionRequest } from "./seed.ts";

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
  /** The fencing token of the leading Tamiyo that sent it (`metadata.leader_token`); absent: not sent by a leader. */
  readonly leader?: number;
}

export interface BlueprintOrder {
  readonly kind: "blueprint";
  readonly commandId: string;
  readonly seedId: number;
  readonly blueprintId: string;
  readonly strategy?: GraftingStrategy;
  readonly leader?: number;
}

export type SeedOrder = LifecycleOrder | BlueprintOrder;

/** What a layer actor takes: commands and batches for its seeds, emergency stops and resumes, epochs and metrics. */
export type LayerEvent =
  | { readonly type: "command"; readonly order: SeedOrder }
  | {
      readonly type: "batch";
      readonly commandId: string;
      readonly orders: readonly SeedOrder[];
      readonly atomic: boolean;
      readonly stopOnError: boolean;
    }
  /**
   * Several orders, each taken on its own as a `command` would be (screened, then sent to its
   * seeds), in one event: how a host hands the layer a run of commands read together, so the
   * layer takes one step for the run instead of one per command. No result of its own.
   */
  | { readonly type: "orders"; readonly orders: readonly SeedOrder[] }
  | { readonly type: "emergency_stop"; readonly commandId: string; readonly seedId: number | null; readonly reason: string; readonly at?: number }
  | { readonly type: "resume"; readonly commandId: string }
  /** Epochs elapsed for every seed: one event per layer per tick, O(1) (seeds hear the count with their next request). */
  | { readonly type: "tick"; readonly epochs: number }
  /** Metrics for some seeds, keyed by seed id: one event per layer per window. */
  | { readonly type: "metrics"; readonly bySeed: ReadonlyMap<number, Metrics> }
  | { readonly type: "seed.error"; readonly seedId: number }
  /** The host replaced some seed actors (a crashed seed restarted, seeds restored): the layer holds the new refs. */
  | { readonly type: "seeds.replaced"; readonly seeds: ReadonlyMap<number, SeedActorRef> }
  /**
   * The newest leading Tamiyo's token, as her lease's counter says (the host reads it before a run
   * of commands that carry tokens): orders of any older leader are refused from now on, even
   * before the new leader has spoken to this layer.
   */
  | { readonly type: "leader"; readonly token: number }
  /** The layer is put back to what its store holds (a commit did not land): its epoch count and its stop. */
  | { readonly type: "restored"; readonly epoch: number; readonly stopReason: string | null; readonly leaderToken?: number };

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

/** What a layer actor emits: one result per command it decided (the runtime turns it into the CommandResult). */
export type LayerEmitted = LayerResult;

export interface LayerInput {
  readonly layerId: string;
  readonly numSeeds: number;
  readonly guards?: GuardConfig;
  /** The seed actors, one per seed id, made and started by the host. */
  readonly seeds: readonly SeedActorRef[];
  /** Restored: the layer's epoch count. Default 0. (A stop in force is restored with the `restored` event.) */
  readonly epoch?: number;
  /** Restored: the newest leader token the layer has seen. Default 0. */
  readonly leaderToken?: number;
}

export interface LayerContext {
  readonly layerId: string;
  readonly numSeeds: number;
  readonly guards: GuardConfig;
  readonly seeds: readonly SeedActorRef[];
  readonly epoch: number;
  readonly stopReason: string | null;
  /**
   * The newest fencing token of a leading Tamiyo the layer has seen (0: none). An order from an
   * older one comes from a deposed leader and is refused (`deposed_leader`).
   */
  readonly leaderToken: number;
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
 * blueprints only on live seeds. `stateOf`: a seed's state as the order would find it (a dry run
 * passes the state earlier orders of its batch would leave).
 */
export const screen = (
  context: LayerContext,
  stopped: boolean,
  order: SeedOrder,
  stateOf: (seedId: number) => SeedState = (seedId) => stateOfRef(context.seeds[seedId]!),
): LayerResult | null => {
  if (order.leader !== undefined && order.leader < context.leaderToken) {
    return refuse(
      order.commandId,
      order.seedId,
      "deposed_leader",
      `sent by a deposed Tamiyo: its leader token ${order.leader} is older than ${context.leaderToken}, which layer ${context.layerId} has seen; only the leading Tamiyo steers`,
    );
  }
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
    const state = stateOf(order.seedId);
    if (isTerminal(state)) {
      return refuse(order.commandId, order.seedId, "terminal_state", `seed ${order.seedId} is ${state}, a terminal state; it takes no blueprint`);
    }
  }
  return null;
};

/** The orders an event carries (a command's one, a batch's, a run's). */
const ordersOf = (event: LayerEvent): readonly SeedOrder[] =>
  event.type === "command" ? [event.order] : event.type === "batch" || event.type === "orders" ? event.orders : [];

/** A stop aimed at one seed the layer does not have: refused, as any order to it is (a stop that did nothing must not say ok). */
const stopTargetUnknown = (context: LayerContext, seedId: number | null): boolean =>
  seedId !== null && !(Number.isInteger(seedId) && seedId >= 0 && seedId < context.numSeeds);

/** The event an order becomes for each seed it reaches, carrying the layer's epoch. */
export const seedEventOf = (order: SeedOrder, epoch: number) =>
  order.kind === "lifecycle"
    ? requestTransition(order.target, {
        force: order.force ?? false,
        ...(order.metrics ? { metrics: order.metrics } : {}),
        reason: order.reason ?? "",
        commandId: order.commandId,
        epoch,
        ...(order.at !== undefined ? { at: order.at } : {}),
      })
    : ({ type: "blueprint", blueprintId: order.blueprintId, commandId: order.commandId, ...(order.strategy ? { strategy: order.strategy } : {}) } as const);

const targetsOf = (context: LayerContext, order: SeedOrder): number[] =>
  order.seedId === null ? Array.from({ length: context.numSeeds }, (_, i) => i) : [order.seedId];

export interface DryRunVerdict {
  readonly order: SeedOrder;
  /** Why it would not apply (its first failing seed), or null when it would. */
  readonly failure: LayerResult | null;
}

/**
 * Pure dry run of orders against the seeds' current snapshots (XState's `transition()`),
 * chaining snapshots so that a batch moving one seed twice is judged step by step. Stops after
 * the first failure when `stopAtFailure` (an atomic batch is lost by then, and judging the rest
 * of a hostile 1,000-order batch would cost for nothing): the verdicts end there.
 */
export const dryRun = (context: LayerContext, stopped: boolean, orders: readonly SeedOrder[], stopAtFailure: boolean): DryRunVerdict[] => {
  const snapshots = new Map<number, SeedSnapshot>();
  const snapshotOf = (seedId: number) => snapshots.get(seedId) ?? context.seeds[seedId]!.getSnapshot();
  const verdicts: DryRunVerdict[] = [];
  for (const order of orders) {
    let failure: LayerResult | null = screen(context, stopped, order, (seedId) => snapshotOf(seedId).value as SeedState);
    if (failure === null && order.kind === "lifecycle") {
      const event = seedEventOf(order, context.epoch);
      for (const seedId of targetsOf(context, order)) {
        // The seed's own logic (a snapshot knows its machine), so a seed with provided implementations is judged as it would act.
        const current = snapshotOf(seedId);
        const [next, actions] = transition(current.machine, current, event as never) as [SeedSnapshot, Array<{ params?: { event?: SeedOutcome } }>];
        const outcome = actions.map((a) => a.params?.event).find((e): e is SeedOutcome => e?.type === "outcome");
        if (outcome && !outcome.ok) {
          failure ??= refuse(order.commandId, seedId, outcome.code, `seed ${seedId}: ${outcome.error}`, outcome.guard ? { guard: outcome.guard, values: outcome.values } : {});
          if (stopAtFailure) break;
        } else {
          snapshots.set(seedId, next);
        }
      }
    }
    verdicts.push({ order, failure });
    if (failure !== null && stopAtFailure) break;
  }
  return verdicts;
};

/** How a command is taken in each state: refused by the layer, or sent to every seed, or to its one seed. */
const commandIn = (stopped: boolean) =>
  [
    { guard: { type: "refused", params: { stopped } }, actions: ["noteLeader", { type: "refuse", params: { stopped } }] },
    { guard: "wholeLayer", actions: ["noteLeader", "deliverToAll"] },
    { actions: ["noteLeader", "deliver"] },
  ] as const;

/** A layer-level refusal (no seed will answer it), as opposed to a seed's own rejection. */
const refusedByLayer = (failure: LayerResult): boolean => failure.code !== "invalid_transition" && failure.code !== "guard_failed" && failure.code !== "terminal_state";

/**
 * A layer: screens every command (unknown seed, stopped layer, batch rules), routes it to its seed actors,
 * runs atomic batches, handles emergency stops (`running` / `stopped`) and counts epochs. Pure; the
 * runtime (LayerHost) spawns its seeds and carries its results to the bus.
 */
export const layerMachine = setup({
  types: {
    context: {} as LayerContext,
    events: {} as LayerEvent,
    input: {} as LayerInput,
    emitted: {} as LayerEmitted,
  },
  guards: {
    /** `stopped` comes from the state the command arrives in: the flag lives in the machine's state alone. */
    refused: ({ context, event }, p: { readonly stopped: boolean }) => event.type === "command" && screen(context, p.stopped, event.order) !== null,
    wholeLayer: ({ event }) => event.type === "command" && event.order.seedId === null,
    unknownStopTarget: ({ context, event }) => event.type === "emergency_stop" && stopTargetUnknown(context, event.seedId),
    wholeLayerStop: ({ event }) => event.type === "emergency_stop" && event.seedId === null,
    /** A layer restored from its store comes back stopped when it was stopped when it was saved. */
    restoredStopped: ({ event }) => event.type === "restored" && event.stopReason !== null,
  },
  actions: {
    refuse: emit(({ context, event }, p: { readonly stopped: boolean }) => screen(context, p.stopped, (event as Extract<LayerEvent, { type: "command" }>).order)!),
    refuseStop: emit(({ context, event }) => {
      const { commandId, seedId } = event as Extract<LayerEvent, { type: "emergency_stop" }>;
      return refuse(commandId, seedId, "unknown_seed", `layer ${context.layerId} has seeds 0..${context.numSeeds - 1}; there is no seed ${seedId} to stop`);
    }),
    /** One seed: the common case, a single send. */
    deliver: sendTo(
      ({ context, event }) => context.seeds[(event as Extract<LayerEvent, { type: "command" }>).order.seedId!]!,
      ({ context, event }) => seedEventOf((event as Extract<LayerEvent, { type: "command" }>).order, context.epoch) as never,
    ),
    deliverToAll: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "command") return;
      const seedEvent = seedEventOf(event.order, context.epoch);
      for (const seed of context.seeds) enqueue.sendTo(seed, seedEvent as never);
    }),
    /** Atomic: dry-run, then apply all or none. Otherwise apply in order, stopping at the first failure if asked. */
    runBatch: enqueueActions(({ context, event, enqueue }, { stopped }: { readonly stopped: boolean }) => {
      if (event.type !== "batch") return;
      const judged = event.atomic || event.stopOnError;
      // Without atomic or stop_on_error, every order is simply applied in turn: nothing to judge first.
      const verdicts = judged
        ? dryRun(context, stopped, event.orders, true)
        : event.orders.map((order) => ({ order, failure: screen(context, stopped, order) }));
      const firstFailure = verdicts.findIndex((v) => v.failure !== null);
      if (event.atomic && firstFailure >= 0) {
        const failed = verdicts[firstFailure]!.failure!;
        const results = event.orders.map((order, index) => ({
          index,
          command_id: order.commandId,
          seed_id: order.seedId,
          applied: false,
          would_apply: index < firstFailure,
          ...(index === firstFailure ? { code: failed.code, error: failed.error } : index > firstFailure ? { judged: false } : {}),
        }));
        enqueue.emit(refuse(event.commandId, null, failed.code, `atomic batch rejected, nothing applied: command ${firstFailure} failed: ${failed.error}`, { results }));
        return;
      }
      const applyCount = !event.atomic && event.stopOnError && firstFailure >= 0 ? firstFailure + 1 : event.orders.length;
      for (let i = 0; i < applyCount; i++) {
        const order = event.orders[i]!;
        const failure = verdicts[i]?.failure ?? null;
        if (failure && refusedByLayer(failure)) {
          enqueue.emit(failure);
          continue;
        }
        const seedEvent = seedEventOf(order, context.epoch);
        for (const seedId of targetsOf(context, order)) enqueue.sendTo(context.seeds[seedId]!, seedEvent as never);
      }
      for (let i = applyCount; i < event.orders.length; i++) {
        const order = event.orders[i]!;
        enqueue.emit(refuse(order.commandId, order.seedId, "internal", "skipped: an earlier command of the batch failed (stop_on_error)", { skipped: true }));
      }
    }),
    /** Each order screened and sent to its seeds, in order. A blueprint screened before an earlier order ended its seed is refused by the seed itself. */
    runOrders: enqueueActions(({ context, event, enqueue }, { stopped }: { readonly stopped: boolean }) => {
      if (event.type !== "orders") return;
      for (const order of event.orders) {
        const failure = screen(context, stopped, order);
        if (failure !== null) {
          enqueue.emit(failure);
          continue;
        }
        const seedEvent = seedEventOf(order, context.epoch);
        if (order.seedId !== null) enqueue.sendTo(context.seeds[order.seedId]!, seedEvent as never);
        else for (const seed of context.seeds) enqueue.sendTo(seed, seedEvent as never);
      }
    }),
    /** GERMINATED and TRAINING seeds are cancelled, active ones rolled back; terminal and dormant seeds stay. */
    stopSeeds: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "emergency_stop") return;
      const seeds = event.seedId === null ? context.seeds.keys() : [event.seedId];
      for (const seedId of seeds) {
        const seed = context.seeds[seedId];
        if (seed === undefined) continue;
        const state = stateOfRef(seed);
        const target: SeedState | null = state === "GERMINATED" || state === "TRAINING" ? "CANCELLED" : ACTIVE_STATES.has(state) ? "ROLLED_BACK" : null;
        if (target === null) continue;
        const request: TransitionRequest = requestTransition(target, {
          force: true,
          reason: `emergency stop: ${recordedReason(event.reason)}`,
          commandId: event.commandId,
          epoch: context.epoch,
          ...(event.at !== undefined ? { at: event.at } : {}),
        });
        enqueue.sendTo(seed, request as never);
      }
    }),
    /** The data plane saw an error in one seed: the seed counts it (the cull validator reads the count). */
    errorToSeed: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "seed.error") return;
      const seed = context.seeds[event.seedId];
      if (seed) enqueue.sendTo(seed, { type: "error" });
    }),
    countEpochs: assign({ epoch: ({ context, event }) => context.epoch + (event as Extract<LayerEvent, { type: "tick" }>).epochs }),
    metricsToSeeds: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "metrics") return;
      for (const [seedId, metrics] of event.bySeed) {
        const seed = context.seeds[seedId];
        if (seed) enqueue.sendTo(seed, { type: "metrics", metrics });
      }
    }),
    /** The stored epoch and stop reason of a restored layer (its state is the transition's target). */
    restore: assign(({ event }) => {
      const e = event as Extract<LayerEvent, { type: "restored" }>;
      return { epoch: e.epoch, stopReason: e.stopReason === null ? null : recordedReason(e.stopReason), leaderToken: e.leaderToken ?? 0 };
    }),
    /** A newer leader's token, once seen, deposes every older one (orders are screened against it after this). */
    noteLeader: assign({
      leaderToken: ({ context, event }) => (event.type === "leader" ? Math.max(context.leaderToken, event.token) : Math.max(context.leaderToken, ...ordersOf(event).map((o) => o.leader ?? 0))),
    }),
    recordStop: assign({ stopReason: ({ event }) => recordedReason((event as Extract<LayerEvent, { type: "emergency_stop" }>).reason) }),
    clearStop: assign({ stopReason: null }),
    replaceSeeds: assign({
      seeds: ({ context, event }) => {
        if (event.type !== "seeds.replaced") return context.seeds;
        const seeds = context.seeds.slice();
        for (const [seedId, ref] of event.seeds) seeds[seedId] = ref;
        return seeds;
      },
    }),
  },
}).createMachine({
  id: "layer",
  context: ({ input }) => ({
    layerId: input.layerId,
    numSeeds: input.numSeeds,
    guards: input.guards ?? DEFAULT_GUARDS,
    seeds: input.seeds,
    epoch: input.epoch ?? 0,
    stopReason: null,
    leaderToken: input.leaderToken ?? 0,
  }),
  initial: "running",
  on: {
    tick: { actions: "countEpochs" },
    metrics: { actions: "metricsToSeeds" },
    "seed.error": { actions: "errorToSeed" },
    "seeds.replaced": { actions: "replaceSeeds" },
    leader: { actions: "noteLeader" },
    restored: [
      { guard: "restoredStopped", target: ".stopped", actions: "restore" },
      { target: ".running", actions: "restore" },
    ],
  },
  states: {
    running: {
      on: {
        command: commandIn(false),
        orders: { actions: ["noteLeader", { type: "runOrders", params: { stopped: false } }] },
        batch: { actions: ["noteLeader", { type: "runBatch", params: { stopped: false } }] },
        emergency_stop: [
          { guard: "unknownStopTarget", actions: "refuseStop" },
          // A stop for the whole layer also closes it to growth until resumed.
          { guard: "wholeLayerStop", target: "stopped", actions: ["stopSeeds", "recordStop"] },
          { actions: "stopSeeds" },
        ],
        resume: {},
      },
    },
    stopped: {
      on: {
        command: commandIn(true),
        orders: { actions: ["noteLeader", { type: "runOrders", params: { stopped: true } }] },
        batch: { actions: ["noteLeader", { type: "runBatch", params: { stopped: true } }] },
        // A second stop while stopped still sweeps the seeds (a seed restarted meanwhile is caught too).
        emergency_stop: [{ guard: "unknownStopTarget", actions: "refuseStop" }, { actions: "stopSeeds" }],
        resume: { target: "running", actions: "clearStop" },
      },
    },
  },
});

export type LayerMachine = typeof layerMachine;
export type LayerActorRef = ActorRefFrom<LayerMachine>;
export type LayerSnapshot = SnapshotFrom<LayerMachine>;
