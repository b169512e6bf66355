/**
 * The client side of the message plane: send a command and await its CommandResult, follow a
 * layer's events and telemetry. Works on any Bus (MemoryBus in process, RedisBus across
 * processes). Made of three parts: the followers that read the layers' event streams
 * (followers.ts), the send batcher (send-batcher.ts), and the deadline queue that times out
 * answers that do not come (deadlines.ts); this file matches answers to the sends that wait.
 */
import { Data, Effect, Result, type Scope } from "effect";
import { openScoped, type Closeable } from "../runtime/scoped.ts";
import type { Bus, EntryFields } from "../bus/bus.ts";
import { decodeMessage } from "../protocol/decode-message.ts";
import { encodeEntry, encodeEntryInProcess } from "../protocol/entry.ts";
import { commandResult } from "../protocol/make.ts";
import type { Command, CommandResult, EmergencyStopCommand, Message } from "../protocol/messages.ts";
import { streams as streamNames } from "../protocol/streams.ts";
import { DeadlineQueue } from "./deadlines.ts";
import { Followers, type StreamListener, type UndecodableListener } from "./followers.ts";
import { CLIENT_DEFAULTS, type ClientOptions, type SendOptions } from "./options.ts";
import { runnerOf } from "./runner.ts";
import { SendBatcher } from "./send-batcher.ts";

export type { ClientOptions, SendOptions } from "./options.ts";
export type { StreamListener, UndecodableListener } from "./followers.ts";

/**
 * Sends commands to layers on a bus and follows their event and telemetry streams, from any
 * process: the layers may run in this one (`startSystem`) or in `esper worker`s over Redis. Made
 * by `startClient` (Promise) or `makeClient` (Effect, in a Scope). Once closed, `send` and `stopAll`
 * reject with ClientClosedError, and sends still waiting resolve with a local `timeout` result.
 */
export interface EsperClient {
  /**
   * Publishes a command to its layer's control stream and resolves with its CommandResult.
   * Never rejects for a refused command (the result says why); a result that does not come in
   * time resolves as a local `timeout` result (`details.local = true`). Rejects only when the
   * bus refuses the publish (BusError).
   */
  readonly send: (command: Command, options?: SendOptions) => Promise<CommandResult>;
  /** An emergency stop for every layer via `P.control.all`; resolves with the results of the named layers. */
  readonly stopAll: (command: EmergencyStopCommand, layers: readonly string[], options?: { readonly timeoutMs?: number }) => Promise<readonly CommandResult[]>;
  /** Every message on a layer's event stream from now on, and every entry there that could not be read. Returns an unsubscribe. */
  readonly events: (layerId: string, listener: StreamListener, undecodable?: UndecodableListener) => Promise<() => void>;
  /** Every message on a layer's telemetry stream from now on. */
  readonly telemetry: (layerId: string, listener: StreamListener, undecodable?: UndecodableListener) => Promise<() => void>;
  /** Commands sent and not yet answered. */
  readonly pending: () => number;
  /** Entries on followed streams that could not be read, since the client started. */
  readonly undecodable: () => number;
}

/**
 * `send` or `stopAll` was called on a client that is closed (or closed while the call waited to
 * start). The command was not published: open a new client to send it.
 */
export class ClientClosedError extends Data.TaggedError("ClientClosedError")<{ readonly message: string }> {}

/**
 * A command waiting for its results: one, or one per layer for a stopAll. Kept small, as
 * thousands may be pending: no copy of the command (only what a local `timeout` result needs),
 * no timer of its own (one timer serves every waiter, see DeadlineQueue).
 */
interface Waiter {
  readonly id: string;
  readonly source: string;
  readonly seedId: number | null;
  /** send: the one layer it waits for. stopAll: the layers that have not answered yet. */
  readonly missing: string | Set<string>;
  /** stopAll only: the first result of each layer, in the order they came. */
  readonly results: CommandResult[] | undefined;
  readonly timeoutMs: number;
  readonly deadline: number;
  /** send: resolves with the CommandResult; stopAll: with the list. */
  readonly resolve: (value: never) => void;
  readonly reject: (error: unknown) => void;
  index: number;
}

const layerOf = (command: Command): string | null => (command.message_type === "BatchCommand" ? command.commands[0]!.layer_id : command.layer_id);

/** Makes a client in the current Scope: followers stop and waiters are answered when it closes. */
export const makeClient = (bus: Bus, options: ClientOptions = {}): Effect.Effect<EsperClient, never, Scope.Scope> =>
  Effect.gen(function* () {
    const o = { ...CLIENT_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as typeof CLIENT_DEFAULTS & ClientOptions;
    const names = streamNames(options.namespace, options.topology);
    const run = runnerOf(yield* Effect.context<never>());
    const waiters = new Map<string, Waiter>();
    let closed = false;

    // The deadline queue reads the same Clock its timer sleeps on.
    const clock = yield* Effect.clockWith(Effect.succeed);
    const deadlines: DeadlineQueue<Waiter> = new DeadlineQueue(run, () => clock.currentTimeMillisUnsafe(), (w) => finish(w, "timeout"));
    const followers = new Followers(bus, run, { blockMs: o.followBlockMs, hmacKey: o.hmacKey, onAnswer: (m) => answer(m) });
    const batcher = new SendBatcher(bus, run, o.maxLen);

    /** Adds a listener to a followed stream (`answers`: results on it settle sends); resolves once its reader is in place. */
    const listen = async (stream: string, answers: boolean, listener: StreamListener, undecodable?: UndecodableListener): Promise<() => void> => {
      const follower = followers.follow(stream, answers);
      follower.listeners.add(listener);
      if (undecodable) follower.undecodable.add(undecodable);
      await follower.ready;
      return () => {
        follower.listeners.delete(listener);
        if (undecodable) follower.undecodable.delete(undecodable);
      };
    };

    const localTimeout = (w: Waiter, layerId: string, why: "timeout" | "closed"): CommandResult => {
      const now = deadlines.now();
      const waitedMs = Math.max(0, now - (w.deadline - w.timeoutMs));
      return commandResult({
        source: w.source,
        timestamp: now / 1000,
        correlation_id: w.id,
        layer_id: layerId,
        seed_id: w.seedId,
        success: false,
        code: "timeout",
        error:
          why === "timeout"
            ? `no CommandResult from layer ${layerId} within ${waitedMs} ms; is a worker hosting it? (esper worker --layer ${layerId})`
            : `the client closed after waiting ${waitedMs} ms for layer ${layerId}'s CommandResult; the command may still be applied`,
        details: why === "timeout" ? { local: true } : { local: true, closed: true },
        execution_time_ms: waitedMs,
      });
    };

    /** Drops the waiter from the books (its map entry and its deadline). */
    const forget = (w: Waiter) => {
      if (waiters.get(w.id) === w) waiters.delete(w.id);
      deadlines.remove(w);
    };

    /** Resolves the call; layers still missing get a local `timeout` result saying why. */
    function finish(w: Waiter, why: "timeout" | "closed") {
      forget(w);
      if (typeof w.missing === "string") (w.resolve as (r: CommandResult) => void)(localTimeout(w, w.missing, why));
      else (w.resolve as (r: CommandResult[]) => void)([...w.results!, ...[...w.missing].map((layer) => localTimeout(w, layer, why))]);
    }

    function answer(message: Message) {
      if (message.message_type !== "CommandResult") return;
      const w = waiters.get(message.correlation_id);
      if (!w) return;
      if (typeof w.missing === "string") {
        if (w.missing !== message.layer_id) return;
        forget(w);
        (w.resolve as (r: CommandResult) => void)(message);
        return;
      }
      // A layer's second answer (a redelivery's duplicate) is not another layer's.
      if (!w.missing.delete(message.layer_id)) return;
      w.results!.push(message);
      if (w.missing.size === 0) {
        forget(w);
        (w.resolve as (r: CommandResult[]) => void)(w.results!);
      }
    }

    /** Registers a waiter for `command`'s results from `layers` and returns its promise. */
    const wait = <R>(command: Command, layers: string | Set<string>, timeoutMs: number): { readonly waiter: Waiter; readonly answer: Promise<R> } => {
      let waiter!: Waiter;
      const promise = new Promise<R>((resolve, reject) => {
        waiter = {
          id: command.message_id,
          source: command.source,
          seedId: "seed_id" in command && typeof command.seed_id === "number" ? command.seed_id : null,
          missing: layers,
          results: typeof layers === "string" ? undefined : [],
          timeoutMs,
          deadline: deadlines.now() + timeoutMs,
          resolve: resolve as (value: never) => void,
          reject,
          index: -1,
        };
      });
      waiters.set(waiter.id, waiter);
      deadlines.add(waiter);
      return { waiter, answer: promise };
    };

    const waitingTime = (command: Command, timeoutMs: number | undefined) =>
      timeoutMs ?? o.defaultTimeoutMs ?? (Number.isFinite(command.timeout_ms) ? command.timeout_ms : o.commandTimeoutMs) + o.answerMarginMs;

    /**
     * The entry for a command, made when `send` is called: what is sent is the command as it was
     * then, whatever the caller does with its object afterwards. In process that takes a copy: the
     * command is decoded (checked) here, and the copy travels trusted; one that does not decode
     * travels as it is, untrusted, and the layer answers it `invalid_message`.
     */
    const encode = (stream: string, command: Command): EntryFields => {
      const base = { stream, codec: o.codec, ...(o.hmacKey !== undefined ? { hmacKey: o.hmacKey } : {}) };
      if (!bus.inProcess) return encodeEntry(command, base);
      const checked = decodeMessage(command, command.message_type);
      return Result.isSuccess(checked) ? encodeEntryInProcess(checked.success, { ...base, trusted: true }) : encodeEntryInProcess(command, { ...base, trusted: false });
    };

    /** Publishes; when the bus refuses, the waiter is dropped and the BusError rejects the call. */
    const publish = (stream: string, fields: EntryFields, waiter: Waiter) =>
      batcher.send(stream, fields, (error) => {
        forget(waiter);
        waiter.reject(error);
      });

    /**
     * Re-sends the very same entry (same message_id) until the answer comes: the layer's dedupe
     * makes a copy that arrives after the first harmless, and one that arrives instead of a lost
     * first is what gets the command through an outage.
     */
    const resendUntilAnswered = (stream: string, fields: EntryFields, waiter: Waiter, firstDelay: number) => {
      const pending = () => !closed && waiters.get(waiter.id) === waiter;
      const loop = (delay: number): Effect.Effect<void> =>
        Effect.andThen(Effect.sleep(delay), () =>
          pending() ? Effect.andThen(Effect.promise(() => batcher.sendNow(stream, fields).catch(() => undefined)), () => loop(Math.min(delay * 2, o.maxResendDelayMs))) : Effect.void,
        );
      run.fork(loop(firstDelay));
    };

    const start = (command: Command, layerId: string, sendOptions: SendOptions, stream: string, fields: EntryFields): Promise<CommandResult> => {
      const { waiter, answer: result } = wait<CommandResult>(command, layerId, waitingTime(command, sendOptions.timeoutMs));
      publish(stream, fields, waiter);
      if (sendOptions.resendAfterMs !== undefined && sendOptions.resendAfterMs > 0) resendUntilAnswered(stream, fields, waiter, sendOptions.resendAfterMs);
      return result;
    };

    const closedError = () => new ClientClosedError({ message: "the client is closed" });

    const client: EsperClient = {
      send: (command, sendOptions = {}) => {
        try {
          if (closed) throw closedError();
          const layerId = layerOf(command);
          if (layerId === null) throw new RangeError("an emergency stop without layer_id goes to every layer: use stopAll(command, layers)");
          const stream = names.control(layerId);
          const fields = encode(stream, command);
          const follower = followers.follow(names.events(layerId), true);
          if (follower.positioned) return start(command, layerId, sendOptions, stream, fields);
          return follower.ready.then(() => (closed ? Promise.reject(closedError()) : start(command, layerId, sendOptions, stream, fields)));
        } catch (error) {
          return Promise.reject(error);
        }
      },
      stopAll: async (command, layers, sendOptions = {}) => {
        if (closed) throw closedError();
        await Promise.all(layers.map((l) => followers.follow(names.events(l), true).ready));
        const missing = new Set(layers);
        const { waiter, answer: results } = wait<CommandResult[]>(command, missing, waitingTime(command, sendOptions.timeoutMs));
        if (missing.size === 0) {
          forget(waiter);
          return [];
        }
        publish(names.controlAll, encode(names.controlAll, command), waiter);
        return results;
      },
      events: (layerId, listener, undecodable) => listen(names.events(layerId), true, listener, undecodable),
      telemetry: (layerId, listener, undecodable) => listen(names.telemetry(layerId), false, listener, undecodable),
      pending: () => waiters.size,
      undecodable: () => followers.undecodable,
    };

    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        closed = true;
        yield* Effect.promise(() => followers.stop());
        // Nobody is left to wait for: every pending call resolves now instead of never.
        for (const waiter of deadlines.drain()) finish(waiter, "closed");
        for (const waiter of [...waiters.values()]) finish(waiter, "closed");
      }),
    );
    return client;
  });

/** A client opened from Promise code; `close()` stops its followers and answers its waiters. */
export interface OpenClient extends EsperClient, Closeable {}

/**
 * The client for Promise code: sends commands to layers on `bus` (a MemoryBus, or
 * `connectRedis(...).bus`) and follows their streams. Effect code uses `makeClient` in a Scope.
 */
export const startClient = (bus: Bus, options: ClientOptions = {}): Promise<OpenClient> => openScoped(Effect.map(makeClient(bus, options), (client) => ({ ...client })));
