/**
 * The seed machine: the 11-state lifecycle with its 16 edges written out one by one, so that
 * Stately's inspector and studio draw exactly the lifecycle.
 *
 * A transition request is the event `to.<STATE>`. The machine answers every request with an
 * emitted `outcome` event: accepted, or rejected with a protocol code (`invalid_transition`,
 * `guard_failed`, `terminal_state`). Rejection is an answer, never an exception and never a
 * silent no-op. The machine does no I/O: the `entered` action is a hook that a host may
 * provide() (e.g. to trace), and everything else is emitted for the runtime to act on.
 */
import { assign, emit, setup, type ActorRefFrom, type SnapshotFrom } from "xstate";
import {
  DEFAULT_GUARDS,
  recordedReason,
  type GraftingStrategy,
  type GuardConfig,
  type SeedState,
} from "./lifecycle.ts";
import { checkTransition, checkEdge, type Metrics, type Verdict } from "./seed-rules.ts";

export interface TransitionRecord {
  readonly from: SeedState;
  readonly to: SeedState;
  readonly forced: boolean;
  readonly reason: string;
  /** Epochs spent in `from`. */
  readonly epochs: number;
  readonly at: number | null;
}

/**
 * Dwell time is counted in epochs of the layer: the layer keeps one epoch counter (a tick adds
 * to it, one event per layer however many seeds it has) and hands it to a seed with every
 * request, so a seed knows how long it has been in its state without a tick of its own.
 * `epochsInState` is `epoch - enteredAt`.
 */
export interface SeedContext {
  readonly seedId: number;
  readonly config: GuardConfig;
  readonly blueprintId: string | null;
  readonly strategy: GraftingStrategy;
  readonly alpha: number;
  /** The layer's epoch count, as this seed last heard it. */
  readonly epoch: number;
  /** The epoch at which the seed entered its current state. */
  readonly enteredAt: number;
  readonly errorCount: number;
  /** The last metrics reported for this seed (merged; a command's metrics count too). */
  readonly metrics: Metrics;
  /** The most recent transitions, newest last, at most `HISTORY_LIMIT`. */
  readonly history: readonly TransitionRecord[];
}

export const HISTORY_LIMIT = 16;

export interface SeedInput {
  readonly seedId: number;
  readonly config?: GuardConfig;
}

export type TransitionEventType = `to.${SeedState}`;

export interface TransitionRequest {
  readonly type: TransitionEventType;
  /** Skip the validators (never the graph). */
  readonly force?: boolean;
  /** Metrics carried by the command; merged into the seed's metrics before judging. */
  readonly metrics?: Metrics;
  readonly reason?: string;
  /** Echoed in the outcome, so the host can match answers to commands. */
  readonly commandId?: string;
  /** Wall-clock time of the request (ms), recorded in history; the machine reads no clock. */
  readonly at?: number;
  /** The layer's epoch count now; the seed judges its dwell time against it (never backwards). */
  readonly epoch?: number;
}

/**
 * What a seed actor takes: a transition request (`to.STATE`, see `requestTransition`), epochs, metrics,
 * an error to count, or a blueprint to graft with. Only requests change its state.
 */
export type SeedEvent =
  | TransitionRequest
  /** Epochs elapsed, for a seed that runs on its own (in a layer, requests carry the layer's epoch instead). */
  | { readonly type: "tick"; readonly epochs: number }
  | { readonly type: "metrics"; readonly metrics: Metrics }
  | { readonly type: "error"; readonly message?: string }
  | {
      readonly type: "blueprint";
      readonly blueprintId: string;
      readonly strategy?: GraftingStrategy;
      readonly commandId?: string;
    };

export type SeedOutcome = {
  readonly type: "outcome";
  readonly seedId: number;
  readonly commandId: string | null;
  readonly from: SeedState;
  readonly to: SeedState;
  readonly forced: boolean;
  readonly reason: string;
  readonly metrics: Metrics;
  readonly epochsInFrom: number;
  readonly at: number | null;
} & (
  | { readonly ok: true }
  | { readonly ok: false; readonly code: Exclude<Verdict, { ok: true }>["code"]; readonly error: string; readonly guard?: string; readonly values?: Readonly<Record<string, number | null>> }
);

/**
 * A seed's answer to a blueprint: taken, or refused because the seed is terminal. A blueprint
 * moves no seed, so it is not an outcome (no transition event, no alpha written).
 */
export type BlueprintAnswer = { readonly type: "blueprint.answer"; readonly seedId: number; readonly commandId: string | null } & (
  /** `previousBlueprintId`: the blueprint it held before (what a rollback of this update puts back). */
  | { readonly ok: true; readonly previousBlueprintId: string | null }
  | { readonly ok: false; readonly code: "terminal_state"; readonly error: string }
);

export type SeedEmitted = SeedOutcome | BlueprintAnswer;

/** Alpha a seed holds on entering each state: the data plane ramps GRAFTING from 0 to 1. */
export const ALPHA_ON_ENTRY: Readonly<Record<SeedState, number>> = {
  DORMANT: 0,
  GERMINATED: 0,
  TRAINING: 0,
  GRAFTING: 0,
  STABILIZATION: 1,
  EVALUATING: 1,
  FINE_TUNING: 1,
  FOSSILIZED: 1,
  CULLED: 0,
  CANCELLED: 0,
  ROLLED_BACK: 0,
};

const targetOf = (event: SeedEvent): SeedState => event.type.slice(3) as SeedState;

/** Static facts of one written edge, passed to its guard and actions as params. */
export interface EdgeParams {
  readonly from: SeedState;
  readonly to: SeedState;
}

const mergeMetrics = (base: Metrics, extra: Metrics | undefined): Metrics =>
  extra && Object.keys(extra).length > 0 ? { ...base, ...extra } : base;

/** The epoch a request is judged at: the layer's, when it says, never before what the seed already heard. */
const epochOf = (context: SeedContext, event: TransitionRequest): number =>
  event.epoch !== undefined && event.epoch > context.epoch ? event.epoch : context.epoch;

/** Epochs a seed has spent in its state: at its own last-heard epoch, or at `epoch` (the layer's) when given. */
export const epochsInState = (context: Pick<SeedContext, "epoch" | "enteredAt">, epoch?: number): number =>
  Math.max(epoch ?? context.epoch, context.epoch) - context.enteredAt;

/** Judges a request for `to` while in `from`: shared by the guard and the rejection. */
const judge = (from: SeedState, to: SeedState, context: SeedContext, event: TransitionRequest): Verdict =>
  checkTransition(
    from,
    to,
    { epochsInState: epochOf(context, event) - context.enteredAt, errorCount: context.errorCount, metrics: mergeMetrics(context.metrics, event.metrics) },
    context.config,
    event.force === true,
  );

const outcomeBase = (from: SeedState, to: SeedState, context: SeedContext, event: TransitionRequest) => ({
  type: "outcome" as const,
  seedId: context.seedId,
  commandId: event.commandId ?? null,
  from,
  to,
  forced: event.force === true,
  reason: recordedReason(event.reason ?? ""),
  metrics: mergeMetrics(context.metrics, event.metrics),
  epochsInFrom: epochOf(context, event) - context.enteredAt,
  at: event.at ?? null,
});

const rejection = (verdict: Verdict) =>
  // An ok verdict here would mean the guard and the judge disagree: report it, loudly.
  verdict.ok ? { code: "invalid_transition" as const, error: "internal: rejected although the validators passed" } : verdict;

/**
 * One edge of the lifecycle: taken when its validators pass (or force), otherwise the request
 * is answered with the validator's rejection. Written once per edge in the states below.
 */
const edge = (from: SeedState, to: SeedState) =>
  [
    {
      target: to,
      guard: { type: "validated", params: { from, to } },
      actions: [
        { type: "accepted", params: { from, to } },
        { type: "enter", params: { from, to } },
        { type: "entered", params: { from, to } },
      ],
    },
    { actions: { type: "rejected", params: { from, to } } },
  ] as const;

/** A seed as it starts: DORMANT, no blueprint, nothing counted. What a store without its snapshot means. */
export const initialSeed = (seedId: number): PersistedSeed => ({
  state: "DORMANT",
  context: { seedId, blueprintId: null, strategy: "linear", alpha: 0, epoch: 0, enteredAt: 0, errorCount: 0, metrics: {}, history: [] },
});

/**
 * A seed's lifecycle: 11 states, 16 guarded edges, pure (no I/O). A request for an edge the graph lacks,
 * or one whose validator fails, is refused and emitted with its reason; it is never applied.
 * Input: `{ seedId, config? }`. In a system the layer actor spawns and drives these; alone, send
 * `requestTransition(...)` events and listen with `actor.on("outcome", ...)`.
 */
export const seedMachine = setup({
  types: {
    context: {} as SeedContext,
    events: {} as SeedEvent,
    input: {} as SeedInput,
    emitted: {} as SeedEmitted,
  },
  guards: {
    validated: ({ context, event }, p: EdgeParams) => judge(p.from, p.to, context, event as TransitionRequest).ok,
  },
  actions: {
    enter: assign(({ context, event }, p: EdgeParams) => {
      const request = event as TransitionRequest;
      const epoch = epochOf(context, request);
      const record: TransitionRecord = {
        from: p.from,
        to: p.to,
        forced: request.force === true,
        reason: recordedReason(request.reason ?? ""),
        epochs: epoch - context.enteredAt,
        at: request.at ?? null,
      };
      const history = context.history.length >= HISTORY_LIMIT ? context.history.slice(1) : context.history.slice();
      history.push(record);
      return {
        epoch,
        enteredAt: epoch,
        alpha: ALPHA_ON_ENTRY[p.to],
        metrics: mergeMetrics(context.metrics, request.metrics),
        history,
      };
    }),
    accepted: emit(({ context, event }, p: EdgeParams) => ({
      ...outcomeBase(p.from, p.to, context, event as TransitionRequest),
      ok: true as const,
    })),
    rejected: emit(({ context, event }, p: EdgeParams) => ({
      ...outcomeBase(p.from, p.to, context, event as TransitionRequest),
      ok: false as const,
      ...rejection(judge(p.from, p.to, context, event as TransitionRequest)),
    })),
    /** A request for a state the graph does not connect to `from`, or any request in a terminal state. */
    noEdge: emit(({ context, event }, p: { readonly from: SeedState }) => {
      const request = event as TransitionRequest;
      const to = targetOf(request);
      return { ...outcomeBase(p.from, to, context, request), ok: false as const, ...rejection(checkEdge(p.from, to)) };
    }),
    blueprintTaken: emit(({ context, event }) => ({
      type: "blueprint.answer" as const,
      seedId: context.seedId,
      commandId: (event as Extract<SeedEvent, { type: "blueprint" }>).commandId ?? null,
      ok: true as const,
      previousBlueprintId: context.blueprintId,
    })),
    /** A terminal seed keeps the blueprint it ended with, and says so. */
    blueprintRefused: emit(({ context, event }, p: { readonly state: SeedState }) => ({
      type: "blueprint.answer" as const,
      seedId: context.seedId,
      commandId: (event as Extract<SeedEvent, { type: "blueprint" }>).commandId ?? null,
      ok: false as const,
      code: "terminal_state" as const,
      error: `seed ${context.seedId} is ${p.state}, a terminal state; it takes no blueprint`,
    })),
    /** A host hook on every accepted transition (tracing, metrics). No-op by default. */
    entered: (_: unknown, _p: EdgeParams) => {},
    countEpochs: assign({ epoch: ({ context, event }) => context.epoch + (event as Extract<SeedEvent, { type: "tick" }>).epochs }),
    recordMetrics: assign({ metrics: ({ context, event }) => ({ ...context.metrics, ...(event as Extract<SeedEvent, { type: "metrics" }>).metrics }) }),
    countError: assign({ errorCount: ({ context }) => context.errorCount + 1 }),
    takeBlueprint: assign(({ context, event }) => {
      const e = event as Extract<SeedEvent, { type: "blueprint" }>;
      return { blueprintId: e.blueprintId, strategy: e.strategy ?? context.strategy };
    }),
  },
}).createMachine({
  id: "seed",
  context: ({ input }) => ({ ...initialSeed(input.seedId).context, config: input.config ?? DEFAULT_GUARDS }),
  initial: "DORMANT",
  on: {
    tick: { actions: "countEpochs" },
    metrics: { actions: "recordMetrics" },
    error: { actions: "countError" },
    // Answered before it is taken, so the answer names the blueprint it replaces.
    blueprint: { actions: ["blueprintTaken", "takeBlueprint"] },
  },
  states: {
    DORMANT: {
      on: {
        "to.*": { actions: { type: "noEdge", params: { from: "DORMANT" } } },
        "to.GERMINATED": edge("DORMANT", "GERMINATED"),
      },
    },
    GERMINATED: {
      on: {
        "to.*": { actions: { type: "noEdge", params: { from: "GERMINATED" } } },
        "to.TRAINING": edge("GERMINATED", "TRAINING"),
        "to.CANCELLED": edge("GERMINATED", "CANCELLED"),
      },
    },
    TRAINING: {
      on: {
        "to.*": { actions: { type: "noEdge", params: { from: "TRAINING" } } },
        "to.GRAFTING": edge("TRAINING", "GRAFTING"),
        "to.CULLED": edge("TRAINING", "CULLED"),
        "to.CANCELLED": edge("TRAINING", "CANCELLED"),
      },
    },
    GRAFTING: {
      on: {
        "to.*": { actions: { type: "noEdge", params: { from: "GRAFTING" } } },
        "to.STABILIZATION": edge("GRAFTING", "STABILIZATION"),
        "to.ROLLED_BACK": edge("GRAFTING", "ROLLED_BACK"),
      },
    },
    STABILIZATION: {
      on: {
        "to.*": { actions: { type: "noEdge", params: { from: "STABILIZATION" } } },
        "to.EVALUATING": edge("STABILIZATION", "EVALUATING"),
        "to.ROLLED_BACK": edge("STABILIZATION", "ROLLED_BACK"),
      },
    },
    EVALUATING: {
      on: {
        "to.*": { actions: { type: "noEdge", params: { from: "EVALUATING" } } },
        "to.FINE_TUNING": edge("EVALUATING", "FINE_TUNING"),
        "to.CULLED": edge("EVALUATING", "CULLED"),
        "to.ROLLED_BACK": edge("EVALUATING", "ROLLED_BACK"),
      },
    },
    FINE_TUNING: {
      on: {
        "to.*": { actions: { type: "noEdge", params: { from: "FINE_TUNING" } } },
        "to.FOSSILIZED": edge("FINE_TUNING", "FOSSILIZED"),
        "to.CULLED": edge("FINE_TUNING", "CULLED"),
        "to.ROLLED_BACK": edge("FINE_TUNING", "ROLLED_BACK"),
      },
    },
    FOSSILIZED: { tags: ["terminal"], on: { "to.*": { actions: { type: "noEdge", params: { from: "FOSSILIZED" } } }, blueprint: { actions: { type: "blueprintRefused", params: { state: "FOSSILIZED" } } } } },
    CULLED: { tags: ["terminal"], on: { "to.*": { actions: { type: "noEdge", params: { from: "CULLED" } } }, blueprint: { actions: { type: "blueprintRefused", params: { state: "CULLED" } } } } },
    CANCELLED: { tags: ["terminal"], on: { "to.*": { actions: { type: "noEdge", params: { from: "CANCELLED" } } }, blueprint: { actions: { type: "blueprintRefused", params: { state: "CANCELLED" } } } } },
    ROLLED_BACK: { tags: ["terminal"], on: { "to.*": { actions: { type: "noEdge", params: { from: "ROLLED_BACK" } } }, blueprint: { actions: { type: "blueprintRefused", params: { state: "ROLLED_BACK" } } } } },
  },
});

export type SeedMachine = typeof seedMachine;
export type SeedActorRef = ActorRefFrom<SeedMachine>;
export type SeedSnapshot = SnapshotFrom<SeedMachine>;

/** The request event for moving a seed to `target`. */
export const requestTransition = (target: SeedState, options: Omit<TransitionRequest, "type"> = {}): TransitionRequest => ({
  type: `to.${target}`,
  ...options,
});

/** The persisted form of a seed: what the state store keeps and a restart resumes from. */
export interface PersistedSeed {
  readonly state: SeedState;
  readonly context: Omit<SeedContext, "config">;
}

export const persistSeed = (snapshot: Pick<SeedSnapshot, "value" | "context">): PersistedSeed => {
  const c = snapshot.context;
  // Field by field rather than a rest pattern: it runs on every transition, and the type keeps the list whole.
  const context: PersistedSeed["context"] = {
    seedId: c.seedId,
    blueprintId: c.blueprintId,
    strategy: c.strategy,
    alpha: c.alpha,
    epoch: c.epoch,
    enteredAt: c.enteredAt,
    errorCount: c.errorCount,
    metrics: c.metrics,
    history: c.history,
  };
  return { state: snapshot.value as SeedState, context };
};

/**
 * The XState snapshot of a persisted seed, for `createActor(logic, { snapshot })`: how a crashed
 * seed is restarted and a stored one comes back. The guard config is the layer's, not the seed's,
 * so it is not persisted and comes from here.
 */
export const seedSnapshotOf = (logic: SeedMachine, persisted: PersistedSeed, config: GuardConfig = DEFAULT_GUARDS): SeedSnapshot =>
  logic.resolveState({ value: persisted.state, context: { ...persisted.context, config } });
