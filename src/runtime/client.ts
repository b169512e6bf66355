/**
 * The client side of the message plane: send a command and await its CommandResult, follow a
 * layer's events and telemetry. Works on any Bus (MemoryBus in process, RedisBus across
 * processes).
 *
 * Results are matched by `correlation_id` from one follower per layer event stream (plain XREAD
 * from the stream's last id at the time the client first used the layer), so a thousand pending
 * commands cost one reader, not a thousand.
 */
import { Data, Effect, Fiber, type Scope } from "effect";
import type { Bus, BusError } from "../bus/bus.ts";
import type { Codec } from "../protocol/codec.ts";
import { decodeEntry, encodeEntry, type HmacKey } from "../protocol/entry.ts";
import type { CommandResult, Message } from "../protocol/messages.ts";
import { streams as streamNames } from "../protocol/streams.ts";
import { commandResult, type CommandMessage } from "./messages.ts";

export interface ClientOptions {
  readonly namespace?: string;
  /** Codec of what the client writes. Default "msgpack"; "json" talks to reference readers. */
  readonly codec?: Codec;
  readonly hmacKey?: HmacKey;
  /** How long `send` waits for a result when the call names no timeout. Default: the command's timeout_ms + 1 s. */
  readonly defaultTimeoutMs?: number;
  /** How long one follower read waits. Default 1000 ms. */
  readonly followBlockMs?: number;
  readonly maxLen?: number;
}

export interface SendOptions {
  /** How long to wait for the result. Default: the client's defaultTimeoutMs, else the command's timeout_ms + 1 s. */
  readonly timeoutMs?: number;
  /**
   * Re-send the same entry (same message_id) when no result came after this many ms, doubling
   * each time, until the result arrives or `timeoutMs` passes. Off by default. Safe: the layer
   * applies a message_id once and answers copies with the first result, flagged `duplicate`.
   */
  readonly resendAfterMs?: number;
}

export type StreamListener = (message: Message, entryId: string) => void;

export interface EsperClient {
  /** Publishes a command to its layer's control stream and resolves with its CommandResult.
   * Never rejects for a refused command (the result says why); a result that does not come in
   * time resolves as a local `timeout` result (`details.local = true`). Rejects only when the
   * bus refuses the publish (BusError). */
  readonly send: (command: CommandMessage, options?: SendOptions) => Promise<CommandResult>;
  /** An emergency stop for every layer via `P.control.all`; resolves with the results of the named layers. */
  readonly stopAll: (command: CommandMessage & { readonly message_type: "EmergencyStopCommand" }, layers: readonly string[], options?: { readonly timeoutMs?: number }) => Promise<readonly CommandResult[]>;
  /** Every message on a layer's event stream from now on. Returns an unsubscribe. */
  readonly events: (layerId: string, listener: StreamListener) => Promise<() => void>;
  /** Every message on a layer's telemetry stream from now on. */
  readonly telemetry: (layerId: string, listener: StreamListener) => Promise<() => void>;
  /** Commands sent and not yet answered. */
  readonly pending: () => number;
}

export class ClientClosedError extends Data.TaggedError("ClientClosedError")<{ readonly message: string }> {}

/** A command waiting for its results: one, or one per layer for a stopAll. */
interface Waiter {
  /** Layers that have not answered yet. */
  readonly missing: Set<string>;
  /** The first result of each layer, in the order they came. */
  readonly results: CommandResult[];
  /** Resolves the call; layers still missing get a local `timeout` result saying why. */
  readonly finish: (why: "answered" | "timeout" | "closed") => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

interface Follower {
  readonly listeners: Set<StreamListener>;
  readonly ready: Promise<void>;
}

/** timeout_ms of a command that names none (LifecycleTransitionCommand's default). */
const DEFAULT_COMMAND_TIMEOUT_MS = 5_000;

/** Makes a client in the current Scope: followers stop and waiters are answered when it closes. */
export const makeClient = (bus: Bus, options: ClientOptions = {}): Effect.Effect<EsperClient, never, Scope.Scope> =>
  Effect.gen(function* () {
    const names = streamNames(options.namespace);
    const codec = options.codec ?? "msgpack";
    const blockMs = options.followBlockMs ?? 1_000;
    const waiters = new Map<string, Waiter>();
    const followers = new Map<string, Follower>();
    const fibers: Fiber.Fiber<unknown, unknown>[] = [];
    let closed = false;
    const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect);

    const onMessage = (message: Message) => {
      if (message.message_type !== "CommandResult") return;
      const waiter = waiters.get(message.correlation_id);
      // A layer's second answer (a redelivery's duplicate) is not another layer's.
      if (!waiter || !waiter.missing.delete(message.layer_id)) return;
      waiter.results.push(message);
      if (waiter.missing.size === 0) waiter.finish("answered");
    };

    /** Starts following `stream` from its current end; resolves once positioned, so nothing sent after is missed. */
    const follow = (stream: string, answers: boolean): Follower => {
      const existing = followers.get(stream);
      if (existing) return existing;
      const listeners = new Set<StreamListener>();
      const ready: Promise<void> = run(
        Effect.gen(function* () {
          let last = yield* bus.lastId(stream);
          const loop = Effect.gen(function* () {
            for (;;) {
              const entries = yield* bus.readAfter(stream, last, 512, blockMs).pipe(
                Effect.catchTag("BusError", (e: BusError) => (e.reason === "closed" ? Effect.interrupt : Effect.sleep(100).pipe(Effect.as([])))),
              );
              for (const entry of entries) {
                last = entry.id;
                const decoded = decodeEntry(stream, entry.fields, options.hmacKey !== undefined ? { hmacKey: options.hmacKey, requireSig: false } : {});
                if (decoded._tag !== "Success") continue;
                if (answers) onMessage(decoded.success);
                for (const listener of listeners) {
                  try {
                    listener(decoded.success, entry.id);
                  } catch {
                    // a listener's failure is its own
                  }
                }
              }
            }
          });
          fibers.push(Effect.runFork(loop));
        }),
      ).catch((error: unknown) => {
        // Not positioned (the bus refused lastId): forget it, so the next use tries again.
        followers.delete(stream);
        throw error;
      });
      const follower = { listeners, ready };
      followers.set(stream, follower);
      return follower;
    };

    /**
     * Resolves with one result per layer, in the order they came; a layer that has not answered
     * when `timeoutMs` pass (or the client closes) gets a local `timeout` result in its place.
     */
    const wait = (command: CommandMessage, layers: readonly string[], timeoutMs: number) =>
      new Promise<CommandResult[]>((resolve) => {
        const startedAt = Date.now();
        const results: CommandResult[] = [];
        const missing = new Set(layers);
        const finish = (why: "answered" | "timeout" | "closed") => {
          waiters.delete(command.message_id);
          clearTimeout(timer);
          const unanswered = why === "answered" ? [] : [...missing].map((layer) => localTimeout(command, layer, why, Date.now() - startedAt));
          resolve([...results, ...unanswered]);
        };
        const timer = setTimeout(() => finish("timeout"), timeoutMs);
        waiters.set(command.message_id, { missing, results, finish, timer });
        if (missing.size === 0) finish("answered");
      });

    const localTimeout = (command: CommandMessage, layerId: string, why: "timeout" | "closed", waitedMs: number): CommandResult =>
      commandResult({
        source: command.source,
        layerId,
        command,
        seedId: "seed_id" in command && typeof command.seed_id === "number" ? command.seed_id : null,
        code: "timeout",
        error:
          why === "timeout"
            ? `no CommandResult from layer ${layerId} within ${waitedMs} ms; is a worker hosting it? (esper worker --layer ${layerId})`
            : `the client closed after waiting ${waitedMs} ms for layer ${layerId}'s CommandResult; the command may still be applied`,
        details: why === "timeout" ? { local: true } : { local: true, closed: true },
        elapsedMs: waitedMs,
      });

    /** How long to wait when the call names no time: the command's own timeout_ms (its schema default when a hand-built one lacks it) + 1 s. */
    const waitingTime = (command: CommandMessage, timeoutMs: number | undefined) =>
      timeoutMs ?? options.defaultTimeoutMs ?? (Number.isFinite(command.timeout_ms) ? command.timeout_ms : DEFAULT_COMMAND_TIMEOUT_MS) + 1_000;

    /** Publishes; when the bus refuses, the command's waiter is dropped and the BusError rejects the call. */
    const publishOrForget = async (stream: string, command: CommandMessage) => {
      try {
        await run(bus.publish(stream, encodeEntry(command, { stream, codec, ...(options.hmacKey !== undefined ? { hmacKey: options.hmacKey } : {}) }), options.maxLen));
      } catch (error) {
        clearTimeout(waiters.get(command.message_id)?.timer);
        waiters.delete(command.message_id);
        throw error;
      }
    };

    const client: EsperClient = {
      send: async (command, sendOptions = {}) => {
        if (closed) throw new ClientClosedError({ message: "the client is closed" });
        const layerId = command.message_type === "BatchCommand" ? command.commands[0]!.layer_id : command.layer_id;
        if (layerId === null) throw new RangeError("an emergency stop without layer_id goes to every layer: use stopAll(command, layers)");
        await follow(names.events(layerId), true).ready;
        const answer = wait(command, [layerId], waitingTime(command, sendOptions.timeoutMs));
        const stream = names.control(layerId);
        await publishOrForget(stream, command);
        const resendAfterMs = sendOptions.resendAfterMs;
        if (resendAfterMs === undefined || resendAfterMs <= 0) return (await answer)[0]!;
        // Re-send the very same entry (same message_id) until the answer comes: the layer's dedupe
        // makes a copy that arrives after the first harmless, and one that arrives instead of a
        // lost first is what gets the command through an outage.
        let delay = resendAfterMs;
        let answered = false;
        const resend = async (): Promise<void> => {
          while (!answered && !closed) {
            await new Promise((r) => setTimeout(r, delay));
            if (answered || closed || !waiters.has(command.message_id)) return;
            delay = Math.min(delay * 2, 30_000);
            await run(bus.publish(stream, encodeEntry(command, { stream, codec, ...(options.hmacKey !== undefined ? { hmacKey: options.hmacKey } : {}) }), options.maxLen)).catch(() => {});
          }
        };
        void resend();
        const [result] = await answer;
        answered = true;
        return result!;
      },
      stopAll: async (command, layers, sendOptions = {}) => {
        if (closed) throw new ClientClosedError({ message: "the client is closed" });
        await Promise.all(layers.map((l) => follow(names.events(l), true).ready));
        const answer = wait(command, [...new Set(layers)], waitingTime(command, sendOptions.timeoutMs));
        await publishOrForget(names.controlAll, command);
        return answer;
      },
      events: async (layerId, listener) => {
        const follower = follow(names.events(layerId), true);
        follower.listeners.add(listener);
        await follower.ready;
        return () => follower.listeners.delete(listener);
      },
      telemetry: async (layerId, listener) => {
        const follower = follow(names.telemetry(layerId), false);
        follower.listeners.add(listener);
        await follower.ready;
        return () => follower.listeners.delete(listener);
      },
      pending: () => waiters.size,
    };

    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        closed = true;
        for (const fiber of fibers) yield* Fiber.interrupt(fiber);
        // Nobody is left to wait for: every pending call resolves now instead of never.
        for (const waiter of [...waiters.values()]) waiter.finish("closed");
      }),
    );
    return client;
  });
