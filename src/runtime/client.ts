/**
 * The client side of the message plane: send a command and await its CommandResult, follow a
 * layer's events and telemetry. Works on any Bus (MemoryBus in process, RedisBus across
 * processes).
 *
 * Results are matched by `correlation_id` from one follower per layer event stream (plain XREAD
 * from the stream's last id at the time the client first used the layer), so a thousand pending
 * commands cost one reader, not a thousand.
 */
import { Data, Effect, Fiber, Result, type Scope } from "effect";
import type { Bus, BusError, EntryFields } from "../bus/bus.ts";
import type { Codec } from "../protocol/codec.ts";
import { decodeMessage } from "../protocol/decode-message.ts";
import { decodeEntry, encodeEntry, encodeEntryInProcess, type HmacKey } from "../protocol/entry.ts";
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
  /**
   * MAXLEN for control streams. Default null: none, since trimming by length drops commands no
   * worker has read yet when a backlog outgrows it; the layer's bridge trims what its group is
   * done with instead (Bus.trimDelivered).
   */
  readonly maxLen?: number | null;
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

/**
 * A command waiting for its results: one, or one per layer for a stopAll. Kept small, as
 * thousands may be pending: no copy of the command (only what a local `timeout` result needs),
 * no timer of its own (one timer serves every waiter, see `deadlines`).
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
  /** Position in the deadline heap; -1 once out of it. */
  index: number;
}

interface Follower {
  readonly listeners: Set<StreamListener>;
  readonly ready: Promise<void>;
  /** Set once `ready` resolved: a send can then go on without waiting a tick. */
  positioned: boolean;
}

/** timeout_ms of a command that names none (LifecycleTransitionCommand's default). */
const DEFAULT_COMMAND_TIMEOUT_MS = 5_000;

/** Makes a client in the current Scope: followers stop and waiters are answered when it closes. */
export const makeClient = (bus: Bus, options: ClientOptions = {}): Effect.Effect<EsperClient, never, Scope.Scope> =>
  Effect.gen(function* () {
    const names = streamNames(options.namespace);
    const codec = options.codec ?? "msgpack";
    const controlMaxLen = options.maxLen ?? null;
    const blockMs = options.followBlockMs ?? 1_000;
    const waiters = new Map<string, Waiter>();
    const followers = new Map<string, Follower>();
    const fibers: Fiber.Fiber<unknown, unknown>[] = [];
    let closed = false;
    const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect);

    // ---- deadlines: a binary min-heap of the waiters by deadline, and ONE timer for its top ----
    const heap: Waiter[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timerAt = Infinity;
    const swap = (i: number, j: number) => {
      const a = heap[i]!;
      const b = heap[j]!;
      heap[i] = b;
      heap[j] = a;
      b.index = i;
      a.index = j;
    };
    const siftUp = (i: number) => {
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (heap[parent]!.deadline <= heap[i]!.deadline) return;
        swap(i, parent);
        i = parent;
      }
    };
    const siftDown = (i: number) => {
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let least = i;
        if (l < heap.length && heap[l]!.deadline < heap[least]!.deadline) least = l;
        if (r < heap.length && heap[r]!.deadline < heap[least]!.deadline) least = r;
        if (least === i) return;
        swap(i, least);
        i = least;
      }
    };
    const heapRemove = (w: Waiter) => {
      const i = w.index;
      if (i < 0) return;
      w.index = -1;
      const last = heap.pop()!;
      if (last === w) return;
      heap[i] = last;
      last.index = i;
      siftDown(i);
      siftUp(last.index);
    };
    /** (Re)arms the one timer for the earliest deadline; a timer already due no later is kept. */
    const arm = () => {
      const top = heap[0];
      if (top === undefined) {
        if (timer !== undefined) clearTimeout(timer);
        timer = undefined;
        timerAt = Infinity;
        return;
      }
      if (timer !== undefined && timerAt <= top.deadline) return;
      if (timer !== undefined) clearTimeout(timer);
      timerAt = top.deadline;
      timer = setTimeout(expire, Math.max(0, top.deadline - Date.now()));
    };
    function expire() {
      // The timer fired, so its deadline has passed even where the clock reads a hair earlier.
      const now = Math.max(Date.now(), timerAt);
      timer = undefined;
      timerAt = Infinity;
      while (heap.length > 0 && heap[0]!.deadline <= now) finish(heap[0]!, "timeout");
      arm();
    }

    const localTimeout = (w: Waiter, layerId: string, why: "timeout" | "closed"): CommandResult => {
      const waitedMs = Date.now() - (w.deadline - w.timeoutMs);
      return commandResult({
        source: w.source,
        layerId,
        command: { message_id: w.id },
        seedId: w.seedId,
        code: "timeout",
        error:
          why === "timeout"
            ? `no CommandResult from layer ${layerId} within ${waitedMs} ms; is a worker hosting it? (esper worker --layer ${layerId})`
            : `the client closed after waiting ${waitedMs} ms for layer ${layerId}'s CommandResult; the command may still be applied`,
        details: why === "timeout" ? { local: true } : { local: true, closed: true },
        elapsedMs: waitedMs,
      });
    };

    /** Drops the waiter from the books (its map entry and its place in the heap). */
    const forget = (w: Waiter) => {
      if (waiters.get(w.id) === w) waiters.delete(w.id);
      const wasTop = w.index === 0;
      heapRemove(w);
      // The timer may stay armed for a deadline that left: it fires, finds nothing due, re-arms.
      if (wasTop && heap.length === 0) arm();
    };

    /** Resolves the call; layers still missing get a local `timeout` result saying why. */
    const finish = (w: Waiter, why: "timeout" | "closed") => {
      forget(w);
      if (typeof w.missing === "string") {
        (w.resolve as (r: CommandResult) => void)(localTimeout(w, w.missing, why));
      } else {
        const unanswered = [...w.missing].map((layer) => localTimeout(w, layer, why));
        (w.resolve as (r: CommandResult[]) => void)([...w.results!, ...unanswered]);
      }
    };

    const onMessage = (message: Message) => {
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
    };

    /** Starts following `stream` from its current end; resolves once positioned, so nothing sent after is missed. */
    const follow = (stream: string, answers: boolean): Follower => {
      const existing = followers.get(stream);
      if (existing) return existing;
      const listeners = new Set<StreamListener>();
      const decodeOptions = options.hmacKey !== undefined ? { hmacKey: options.hmacKey, requireSig: false } : {};
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
                // Nobody listens, only waiters: what is not a CommandResult need not be decoded.
                if (listeners.size === 0 && entry.fields.type !== "CommandResult") continue;
                const decoded = decodeEntry(stream, entry.fields, decodeOptions);
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
      )
        .then(() => {
          follower.positioned = true;
        })
        .catch((error: unknown) => {
        // Not positioned (the bus refused lastId): forget it, so the next use tries again.
        followers.delete(stream);
        throw error;
      });
      const follower: Follower = { listeners, ready, positioned: false };
      followers.set(stream, follower);
      return follower;
    };

    /**
     * Registers a waiter for `command`'s results from `layers` (one string: a send) and returns
     * its promise; a layer that has not answered when `timeoutMs` pass (or the client closes) gets
     * a local `timeout` result in its place.
     */
    const wait = <R>(command: CommandMessage, layers: string | Set<string>, timeoutMs: number): { readonly waiter: Waiter; readonly answer: Promise<R> } => {
      let waiter!: Waiter;
      const answer = new Promise<R>((resolve, reject) => {
        waiter = {
          id: command.message_id,
          source: command.source,
          seedId: "seed_id" in command && typeof command.seed_id === "number" ? command.seed_id : null,
          missing: layers,
          results: typeof layers === "string" ? undefined : [],
          timeoutMs,
          deadline: Date.now() + timeoutMs,
          resolve: resolve as (value: never) => void,
          reject,
          index: heap.length,
        };
      });
      waiters.set(waiter.id, waiter);
      heap.push(waiter);
      siftUp(waiter.index);
      arm();
      return { waiter, answer };
    };

    /** How long to wait when the call names no time: the command's own timeout_ms (its schema default when a hand-built one lacks it) + 1 s. */
    const waitingTime = (command: CommandMessage, timeoutMs: number | undefined) =>
      timeoutMs ?? options.defaultTimeoutMs ?? (Number.isFinite(command.timeout_ms) ? command.timeout_ms : DEFAULT_COMMAND_TIMEOUT_MS) + 1_000;

    /**
     * The entry for a command, made when `send` is called: what is sent is the command as it was
     * then, whatever the caller does with its object afterwards. In process that takes a copy: the
     * command is decoded (checked) here, and the copy travels trusted; one that does not decode
     * travels as it is, untrusted, and the layer answers it `invalid_message`.
     */
    const encode = (stream: string, command: CommandMessage) => {
      const signing = options.hmacKey !== undefined ? { hmacKey: options.hmacKey } : {};
      if (!bus.inProcess) return encodeEntry(command, { stream, codec, ...signing });
      const checked = decodeMessage(command, command.message_type);
      return Result.isSuccess(checked)
        ? encodeEntryInProcess(checked.success, { stream, codec, trusted: true, ...signing })
        : encodeEntryInProcess(command, { stream, codec, trusted: false, ...signing });
    };

    /**
     * Commands sent in the same turn of the event loop go out in one publishMany (one pipeline
     * on Redis), not one publish (and one fiber) each.
     */
    let outgoing: Array<{ readonly stream: string; readonly fields: EntryFields; readonly waiter: Waiter }> = [];
    const publishOne = (stream: string, fields: EntryFields, waiter: Waiter) =>
      run(bus.publish(stream, fields, controlMaxLen)).then(undefined, (error: unknown) => {
        forget(waiter);
        waiter.reject(error);
      });
    const flush = () => {
      const batch = outgoing;
      outgoing = [];
      if (batch.length === 1) return void publishOne(batch[0]!.stream, batch[0]!.fields, batch[0]!.waiter);
      // When the batch is refused, each entry goes again on its own, so only the sends the bus
      // refuses fail. Those the batch did write are written twice: the layer answers the copy as
      // a duplicate, with the first answer, and the waiter takes whichever comes first.
      run(bus.publishMany(batch, controlMaxLen)).then(undefined, () => {
        for (const { stream, fields, waiter } of batch) void publishOne(stream, fields, waiter);
      });
    };

    /** Publishes; when the bus refuses, the waiter is dropped and the BusError rejects the call. */
    const publishOrForget = (stream: string, fields: EntryFields, waiter: Waiter): void => {
      if (outgoing.length === 0) queueMicrotask(flush);
      outgoing.push({ stream, fields, waiter });
    };

    /**
     * Re-sends the very same entry (same message_id) until the answer comes: the layer's dedupe
     * makes a copy that arrives after the first harmless, and one that arrives instead of a lost
     * first is what gets the command through an outage. Only these sends keep their encoded bytes.
     */
    const resendUntilAnswered = (stream: string, fields: EntryFields, waiter: Waiter, firstDelay: number) => {
      let delay = firstDelay;
      const pending = () => !closed && waiters.get(waiter.id) === waiter;
      const next = () => {
        if (pending()) setTimeout(again, delay);
      };
      const again = () => {
        if (!pending()) return;
        delay = Math.min(delay * 2, 30_000);
        run(bus.publish(stream, fields, controlMaxLen)).then(next, next);
      };
      next();
    };

    const start = (command: CommandMessage, layerId: string, sendOptions: SendOptions, stream: string, fields: EntryFields): Promise<CommandResult> => {
      const { waiter, answer } = wait<CommandResult>(command, layerId, waitingTime(command, sendOptions.timeoutMs));
      publishOrForget(stream, fields, waiter);
      const resendAfterMs = sendOptions.resendAfterMs;
      if (resendAfterMs !== undefined && resendAfterMs > 0) resendUntilAnswered(stream, fields, waiter, resendAfterMs);
      return answer;
    };

    const client: EsperClient = {
      send: (command, sendOptions = {}) => {
        try {
          if (closed) throw new ClientClosedError({ message: "the client is closed" });
          const layerId = command.message_type === "BatchCommand" ? command.commands[0]!.layer_id : command.layer_id;
          if (layerId === null) throw new RangeError("an emergency stop without layer_id goes to every layer: use stopAll(command, layers)");
          const stream = names.control(layerId);
          const fields = encode(stream, command);
          const follower = follow(names.events(layerId), true);
          if (follower.positioned) return start(command, layerId, sendOptions, stream, fields);
          return follower.ready.then(() =>
            closed ? Promise.reject(new ClientClosedError({ message: "the client is closed" })) : start(command, layerId, sendOptions, stream, fields),
          );
        } catch (error) {
          return Promise.reject(error);
        }
      },
      stopAll: async (command, layers, sendOptions = {}) => {
        if (closed) throw new ClientClosedError({ message: "the client is closed" });
        await Promise.all(layers.map((l) => follow(names.events(l), true).ready));
        const missing = new Set(layers);
        const { waiter, answer } = wait<CommandResult[]>(command, missing, waitingTime(command, sendOptions.timeoutMs));
        if (missing.size === 0) {
          forget(waiter);
          return [];
        }
        publishOrForget(names.controlAll, encode(names.controlAll, command), waiter);
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
        for (const waiter of [...waiters.values()]) finish(waiter, "closed");
        if (timer !== undefined) clearTimeout(timer);
        timer = undefined;
      }),
    );
    return client;
  });
