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

export type StreamListener = (message: Message, entryId: string) => void;

export interface EsperClient {
  /** Publishes a command to its layer's control stream and resolves with its CommandResult.
   * Never rejects for a refused command (the result says why); a result that does not come in
   * time resolves as a local `timeout` result (`details.local = true`). Rejects only when the
   * bus refuses the publish (BusError). */
  readonly send: (command: CommandMessage, options?: { readonly timeoutMs?: number }) => Promise<CommandResult>;
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

interface Waiter {
  readonly resolve: (result: CommandResult) => void;
  readonly timer: ReturnType<typeof setTimeout>;
  /** How many results it still waits for (a stopAll waits for one per layer). */
  readonly results: CommandResult[];
  readonly expected: number;
}

interface Follower {
  readonly listeners: Set<StreamListener>;
  readonly ready: Promise<void>;
}

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
      if (!waiter) return;
      waiter.results.push(message);
      if (waiter.results.length >= waiter.expected) {
        waiters.delete(message.correlation_id);
        clearTimeout(waiter.timer);
        waiter.resolve(message);
      }
    };

    /** Starts following `stream` from its current end; resolves once positioned, so nothing sent after is missed. */
    const follow = (stream: string, answers: boolean): Follower => {
      const existing = followers.get(stream);
      if (existing) return existing;
      const listeners = new Set<StreamListener>();
      const ready = run(
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
      );
      const follower = { listeners, ready };
      followers.set(stream, follower);
      return follower;
    };

    const wait = (correlationId: string, expected: number, timeoutMs: number, onTimeout: (got: readonly CommandResult[]) => CommandResult) =>
      new Promise<CommandResult[]>((resolve) => {
        const results: CommandResult[] = [];
        const timer = setTimeout(() => {
          waiters.delete(correlationId);
          resolve([...results, onTimeout(results)]);
        }, timeoutMs);
        waiters.set(correlationId, { resolve: () => resolve(results), timer, results, expected });
      });

    const localTimeout = (command: CommandMessage, layerId: string, timeoutMs: number): CommandResult =>
      commandResult({
        source: command.source,
        layerId,
        command,
        seedId: "seed_id" in command && typeof command.seed_id === "number" ? command.seed_id : null,
        code: "timeout",
        error: `no CommandResult from layer ${layerId} within ${timeoutMs} ms; is a worker hosting it? (esper worker --layer ${layerId})`,
        details: { local: true },
        elapsedMs: timeoutMs,
      });

    const publish = (stream: string, command: CommandMessage) =>
      run(bus.publish(stream, encodeEntry(command, { stream, codec, ...(options.hmacKey !== undefined ? { hmacKey: options.hmacKey } : {}) }), options.maxLen));

    const client: EsperClient = {
      send: async (command, sendOptions = {}) => {
        if (closed) throw new ClientClosedError({ message: "the client is closed" });
        const layerId = command.message_type === "BatchCommand" ? command.commands[0]!.layer_id : command.layer_id;
        if (layerId === null) throw new RangeError("an emergency stop without layer_id goes to every layer: use stopAll(command, layers)");
        await follow(names.events(layerId), true).ready;
        const timeoutMs = sendOptions.timeoutMs ?? options.defaultTimeoutMs ?? command.timeout_ms + 1_000;
        const answer = wait(command.message_id, 1, timeoutMs, () => localTimeout(command, layerId, timeoutMs));
        try {
          await publish(names.control(layerId), command);
        } catch (error) {
          clearTimeout(waiters.get(command.message_id)?.timer);
          waiters.delete(command.message_id);
          throw error;
        }
        return (await answer)[0]!;
      },
      stopAll: async (command, layers, sendOptions = {}) => {
        await Promise.all(layers.map((l) => follow(names.events(l), true).ready));
        const timeoutMs = sendOptions.timeoutMs ?? options.defaultTimeoutMs ?? command.timeout_ms + 1_000;
        const answer = wait(command.message_id, layers.length, timeoutMs, (got) => {
          const answered = new Set(got.map((r) => r.layer_id));
          const missing = layers.filter((l) => !answered.has(l));
          return localTimeout(command, missing[0] ?? layers[0]!, timeoutMs);
        });
        await publish(names.controlAll, command);
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
        for (const [id, waiter] of waiters) {
          clearTimeout(waiter.timer);
          waiters.delete(id);
        }
      }),
    );
    return client;
  });
