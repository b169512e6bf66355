/**
 * Tamiyo, the controller: observes telemetry, decides, commands, and tracks every command it
 * sent until its result arrives or its `timeout_ms` passes (then the command is answered
 * `timeout`). Degrades while the bus is unavailable (buffers telemetry, sends nothing) and has an
 * emergency state that refuses to command until recovered.
 *
 * Pure: the policy is an injected actor (`policy`, provided with machine.provide), time comes in
 * `clock` events, and commands to send are emitted (`dispatch`) for the host to publish.
 */
import { assign, emit, enqueueActions, fromPromise, setup, type ActorRefFrom, type SnapshotFrom } from "xstate";

export interface OutstandingCommand {
  readonly commandId: string;
  readonly layerId: string;
  readonly sentAt: number;
  readonly timeoutMs: number;
}

/** What the policy asks for; the host turns each into a protocol command. */
export interface Decision {
  readonly commandId: string;
  readonly layerId: string;
  readonly timeoutMs: number;
  readonly command: unknown;
}

export interface PolicyInput {
  readonly telemetry: readonly unknown[];
  readonly outstanding: readonly OutstandingCommand[];
}

export interface ControllerContext {
  readonly outstanding: Readonly<Record<string, OutstandingCommand>>;
  /** Telemetry received since the last decision (bounded), oldest first. */
  readonly telemetry: readonly unknown[];
  readonly telemetryLimit: number;
  /** Telemetry dropped because the buffer was full (counted, never silent). */
  readonly droppedTelemetry: number;
  /**
   * How many of the oldest buffered reports the running policy was given: only those are cleared
   * when it answers, so reports that arrive while it decides wait for the next decision.
   */
  readonly decidingOn: number;
  readonly pending: readonly Decision[];
  readonly now: number;
  readonly timedOut: number;
  readonly emergencyReason: string | null;
}

/** What the controller takes: telemetry to buffer, a `decide` tick, results and timeouts of its commands, bus and emergency signals. */
export type ControllerEvent =
  | { readonly type: "telemetry"; readonly report: unknown }
  | { readonly type: "decide" }
  | { readonly type: "dispatched"; readonly at: number }
  | { readonly type: "result"; readonly correlationId: string }
  | { readonly type: "clock"; readonly now: number }
  | { readonly type: "bus.down" }
  | { readonly type: "bus.up" }
  | { readonly type: "emergency"; readonly reason: string }
  | { readonly type: "recover" };

/** What the controller emits: the decisions to send (`dispatch`) and commands that timed out. */
export type ControllerEmitted =
  | { readonly type: "dispatch"; readonly decisions: readonly Decision[] }
  | { readonly type: "timeout"; readonly command: OutstandingCommand; readonly waitedMs: number };

export interface ControllerInput {
  readonly telemetryLimit?: number;
  readonly now?: number;
}

const pushTelemetry = (context: ControllerContext, report: unknown) => {
  const overflow = context.telemetry.length >= context.telemetryLimit;
  const telemetry = overflow ? [...context.telemetry.slice(1), report] : [...context.telemetry, report];
  return {
    telemetry,
    droppedTelemetry: context.droppedTelemetry + (overflow ? 1 : 0),
    // An overflow drops the oldest report, which is one the policy was given (if any).
    decidingOn: overflow ? Math.max(0, context.decidingOn - 1) : context.decidingOn,
  };
};

/**
 * Tamiyo's control loop as a machine: observing -> deciding (invokes the `policy` actor) -> commanding,
 * with degraded (bus down) and emergency states. Pure: `startTamiyo` provides the policy and the I/O.
 */
export const controllerMachine = setup({
  types: {
    context: {} as ControllerContext,
    events: {} as ControllerEvent,
    input: {} as ControllerInput,
    emitted: {} as ControllerEmitted,
  },
  actors: {
    /** The decision policy; the default decides nothing. A later issue provides Tamiyo's. */
    policy: fromPromise<readonly Decision[], PolicyInput>(async () => []),
  },
  actions: {
    buffer: assign(({ context, event }) => (event.type === "telemetry" ? pushTelemetry(context, event.report) : {})),
    settle: assign({
      outstanding: ({ context, event }) => {
        if (event.type !== "result" || !(event.correlationId in context.outstanding)) return context.outstanding;
        const { [event.correlationId]: _done, ...rest } = context.outstanding;
        return rest;
      },
    }),
    /** Every outstanding command past its deadline is answered `timeout` and forgotten. */
    expire: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "clock") return;
      const expired = expiredAt(context, event.now);
      for (const command of expired) enqueue.emit({ type: "timeout", command, waitedMs: event.now - command.sentAt });
      const outstanding = { ...context.outstanding };
      for (const command of expired) delete outstanding[command.commandId];
      enqueue.assign({ now: event.now, outstanding, timedOut: context.timedOut + expired.length });
    }),
    recordEmergency: assign({ emergencyReason: ({ event }) => (event as Extract<ControllerEvent, { type: "emergency" }>).reason }),
    clearEmergency: assign({ emergencyReason: null }),
    /** How much of the buffer the policy is given: what arrives while it decides is kept for the next round. */
    markDecided: assign({ decidingOn: ({ context }) => context.telemetry.length }),
    takeDecisions: assign({ pending: ({ event }) => (event as unknown as { output: readonly Decision[] }).output }),
    dropDecided: assign({ telemetry: ({ context }) => context.telemetry.slice(context.decidingOn) }),
    dispatch: emit(({ context }) => ({ type: "dispatch" as const, decisions: context.pending })),
    /** The decisions sent, as commands waiting for their results (timed out by `clock`). */
    trackDispatched: assign(({ context, event }) => {
      const at = (event as Extract<ControllerEvent, { type: "dispatched" }>).at;
      const outstanding = { ...context.outstanding };
      for (const d of context.pending) outstanding[d.commandId] = { commandId: d.commandId, layerId: d.layerId, sentAt: at, timeoutMs: d.timeoutMs };
      return { outstanding, pending: [] };
    }),
    dropPending: assign({ pending: [] }),
  },
  guards: {
    hasTelemetry: ({ context }) => context.telemetry.length > 0,
    hasDecisions: ({ event }) => ((event as unknown as { output?: readonly Decision[] }).output?.length ?? 0) > 0,
  },
}).createMachine({
  id: "tamiyo",
  context: ({ input }) => ({
    outstanding: {},
    telemetry: [],
    telemetryLimit: input.telemetryLimit ?? 1_000,
    droppedTelemetry: 0,
    decidingOn: 0,
    pending: [],
    now: input.now ?? 0,
    timedOut: 0,
    emergencyReason: null,
  }),
  initial: "observing",
  on: {
    result: { actions: "settle" },
    clock: { actions: "expire" },
    emergency: { target: ".emergency", actions: "recordEmergency" },
  },
  states: {
    observing: {
      on: {
        telemetry: { actions: "buffer" },
        decide: { guard: "hasTelemetry", target: "deciding" },
        "bus.down": { target: "degraded" },
      },
    },
    deciding: {
      entry: "markDecided",
      invoke: {
        src: "policy",
        input: ({ context }) => ({ telemetry: context.telemetry, outstanding: Object.values(context.outstanding) }),
        onDone: [
          {
            guard: "hasDecisions",
            target: "commanding",
            actions: ["takeDecisions", "dropDecided"],
          },
          { target: "observing", actions: "dropDecided" },
        ],
        // A failing policy must not take Tamiyo down: keep observing, keep the telemetry.
        onError: { target: "observing" },
      },
      on: {
        telemetry: { actions: "buffer" },
        "bus.down": { target: "degraded" },
      },
    },
    commanding: {
      entry: "dispatch",
      on: {
        telemetry: { actions: "buffer" },
        dispatched: {
          target: "observing",
          actions: "trackDispatched",
        },
        // The bus went away before the commands left: drop them, decide again when it is back.
        "bus.down": { target: "degraded", actions: "dropPending" },
      },
    },
    degraded: {
      on: {
        telemetry: { actions: "buffer" },
        "bus.up": { target: "observing" },
      },
    },
    emergency: {
      on: {
        telemetry: { actions: "buffer" },
        recover: { target: "observing", actions: "clearEmergency" },
      },
    },
  },
});

/** Commands past their deadline at `now`: what `clock` will answer `timeout`. */
export const expiredAt = (context: ControllerContext, now: number): OutstandingCommand[] =>
  Object.values(context.outstanding).filter((c) => now - c.sentAt > c.timeoutMs);

export type ControllerMachine = typeof controllerMachine;
export type ControllerActorRef = ActorRefFrom<ControllerMachine>;
export type ControllerSnapshot = SnapshotFrom<ControllerMachine>;
