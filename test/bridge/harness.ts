/**
 * What the bridge tests share: one fixture per bus (MemoryBus in process, RedisBus on a real
 * Redis), bridges and clients that live in their own Scopes, and readers of what the bridge
 * wrote (results, transitions, dead letters). Every fixture has its own namespace, and a Redis
 * fixture deletes its keys when closed. Without Redis, opening a Redis fixture throws, saying how
 * to start one: these tests fail, they never skip.
 */
import { Effect, Exit, Result, Scope } from "effect";
import type { PersistedSeed } from "../../machines/seed.ts";
import { readSeed } from "../../src/bridge/store.ts";
import { decodeBody } from "../../src/protocol/codec.ts";
import type { Redis } from "ioredis";
import { afterAll, afterEach } from "vitest";
import type { Bus, Entry, EntryFields } from "../../src/bus/bus.ts";
import { listDeadLetters, type DeadLetterRecord } from "../../src/bus/dead-letters.ts";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import { compareStreamIds, parseStreamId } from "../../src/bus/stream-id.ts";
import { makeRedisBus } from "../../src/bus/redis-bus.ts";
import { decodeEntry, encodeEntry, type HmacKey } from "../../src/protocol/entry.ts";
import type { CommandResult, Message, StateTransitionEvent } from "../../src/protocol/messages.ts";
import { streams, type Streams } from "../../src/protocol/streams.ts";
import { makeClient, type ClientOptions, type EsperClient } from "../../src/client/client.ts";
import { LayerHost, type LayerHostOptions } from "../../src/runtime/layer-host.ts";
import { runLayerBridge, type LayerBridge } from "../../src/bridge/bridge.ts";
import type { BridgeOptions } from "../../src/bridge/options.ts";
import type { Command as CommandMessage } from "../../src/protocol/messages.ts";
import { connectOrFail, deleteNamespace, REDIS_URL } from "../support/redis.ts";

export type BusKind = "MemoryBus" | "RedisBus";

export interface Fixture {
  readonly kind: BusKind;
  readonly bus: Bus;
  readonly names: Streams;
  /** Admin connection to the same Redis (RedisBus fixtures only). */
  readonly admin?: Redis;
}

/** Bridge options that keep tests fast: short blocking reads, quick retries. */
export const FAST: BridgeOptions = { blockMs: 50, maxRetryDelayMs: 50, houseKeepingMs: 200 };

let counter = 0;
/** A namespace no other test uses, within docs/protocol.md's `[a-z0-9_-]{1,32}`. */
export const testNamespace = (): string =>
  `bt${process.pid.toString(36)}x${(counter++).toString(36)}x${Math.random().toString(36).slice(2, 8)}`;

let admin: Redis | undefined;
afterAll(async () => {
  await admin?.quit();
  admin = undefined;
});

/** Finalizers of the current test, run in reverse order after it (bridges before buses). */
const cleanups: Array<() => Promise<unknown>> = [];
export const defer = (cleanup: () => Promise<unknown>): void => void cleanups.push(cleanup);
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const openScope = async (): Promise<Scope.Closeable> => {
  const scope = await Effect.runPromise(Scope.make());
  defer(() => Effect.runPromise(Scope.close(scope, Exit.void)));
  return scope;
};

/** A fresh namespace on a bus of `kind`; `maxLen`: the bus's default MAXLEN, when a test needs a small one. */
export const openFixture = async (kind: BusKind, maxLen?: number): Promise<Fixture> => {
  const namespace = testNamespace();
  const names = streams(namespace);
  if (kind === "MemoryBus") return { kind, bus: new MemoryBus(maxLen === undefined ? {} : { maxLen }), names };
  admin ??= await connectOrFail();
  const cleaner = admin;
  defer(() => deleteNamespace(cleaner, `${namespace}.`));
  const scope = await openScope();
  const bus = await Effect.runPromise(Scope.provide(scope)(makeRedisBus({ url: REDIS_URL, ...(maxLen === undefined ? {} : { maxLen }) })));
  return { kind, bus, names, admin: cleaner };
};

export const BUS_KINDS: readonly BusKind[] = ["MemoryBus", "RedisBus"];

export interface RunningBridge {
  readonly host: LayerHost;
  readonly bridge: LayerBridge;
  /** Closes the bridge's Scope (the loop finishes its batch, commits, stops) and stops the host. */
  readonly close: () => Promise<void>;
}

export interface BridgeSpec {
  readonly layerId?: string;
  readonly numSeeds?: number;
  readonly options?: BridgeOptions;
  readonly host?: Partial<LayerHostOptions>;
  /** Builds the host (a subclass that misbehaves...). Default: `new LayerHost(options)`. */
  readonly makeHost?: (options: LayerHostOptions) => LayerHost;
  /** The bus the bridge runs on, when not the fixture's (a wrapper that delays commits...). */
  readonly bus?: Bus;
}

/** A LayerHost and its bridge on the fixture's bus and namespace, in a Scope of their own. */
export const startBridge = async (fx: Fixture, spec: BridgeSpec = {}): Promise<RunningBridge> => {
  const layerId = spec.layerId ?? "a";
  const scope = await Effect.runPromise(Scope.make());
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await Effect.runPromise(Scope.close(scope, Exit.void));
  };
  defer(close);
  const hostOptions: LayerHostOptions = { layerId, numSeeds: spec.numSeeds ?? 4, ...spec.host };
  const host = spec.makeHost ? spec.makeHost(hostOptions) : new LayerHost(hostOptions);
  await Effect.runPromise(Scope.addFinalizer(scope, Effect.sync(() => host.stop())));
  const bridge = await Effect.runPromise(
    Scope.provide(scope)(runLayerBridge(spec.bus ?? fx.bus, host, { namespace: fx.names.namespace, consumer: "worker-1", ...FAST, ...spec.options })),
  );
  return { host, bridge, close };
};

/** A client on the fixture's namespace (on `bus` when given, else the fixture's), closed after the test. */
export const openClient = async (fx: Fixture, options: ClientOptions = {}, bus: Bus = fx.bus): Promise<EsperClient> => {
  const scope = await openScope();
  return Effect.runPromise(Scope.provide(scope)(makeClient(bus, { namespace: fx.names.namespace, followBlockMs: 50, ...options })));
};

/** Collects a layer's CommandResults as the client sees them, to await one by correlation id. */
export const watchResults = async (client: EsperClient, layerId: string) => {
  const seen: CommandResult[] = [];
  const waiting = new Map<string, Array<(r: CommandResult) => void>>();
  await client.events(layerId, (message) => {
    if (message.message_type !== "CommandResult") return;
    seen.push(message);
    for (const resolve of waiting.get(message.correlation_id) ?? []) resolve(message);
    waiting.delete(message.correlation_id);
  });
  return {
    seen,
    /** The first result for `correlationId` (already seen or still to come); rejects after `timeoutMs`. */
    result: (correlationId: string, timeoutMs = 5_000): Promise<CommandResult> => {
      const found = seen.find((r) => r.correlation_id === correlationId);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no CommandResult for ${correlationId} on layer ${layerId} within ${timeoutMs} ms`)), timeoutMs);
        const list = waiting.get(correlationId) ?? [];
        list.push((r) => {
          clearTimeout(timer);
          resolve(r);
        });
        waiting.set(correlationId, list);
      });
    },
  };
};

export const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect);

/** Encodes a command for a layer's control stream (signed when a key is given). */
export const commandFields = (fx: Fixture, command: CommandMessage, options: { readonly stream?: string; readonly hmacKey?: HmacKey } = {}): EntryFields => {
  const stream = options.stream ?? fx.names.control(layerOf(command));
  return encodeEntry(command, { stream, ...(options.hmacKey !== undefined ? { hmacKey: options.hmacKey } : {}) });
};

export const layerOf = (command: CommandMessage): string => {
  const layer = command.message_type === "BatchCommand" ? command.commands[0]!.layer_id : command.layer_id;
  if (layer === null) throw new Error("a stop for every layer goes to P.control.all");
  return layer;
};

/** Appends raw fields to a stream, as any writer (a Python trainer, redis-cli) could. */
export const publishRaw = (fx: Fixture, stream: string, fields: EntryFields | Record<string, Uint8Array | string>): Promise<string> =>
  run(fx.bus.publish(stream, fields as EntryFields));

/** Publishes a command to its layer's control stream without waiting for anything. */
export const publishCommand = (fx: Fixture, command: CommandMessage, options: { readonly hmacKey?: HmacKey } = {}): Promise<string> =>
  publishRaw(fx, fx.names.control(layerOf(command)), commandFields(fx, command, options));

const decodeAll = (stream: string, entries: readonly Entry[]): Message[] =>
  entries.flatMap((entry) => {
    const decoded = decodeEntry(stream, entry.fields);
    return decoded._tag === "Success" ? [decoded.success] : [];
  });

/** Everything on a layer's event stream, decoded, in stream order. */
export const eventsOf = async (fx: Fixture, layerId: string): Promise<Message[]> => {
  const stream = fx.names.events(layerId);
  return decodeAll(stream, await run(fx.bus.range(stream)));
};

export const resultsOf = async (fx: Fixture, layerId: string, correlationId?: string): Promise<CommandResult[]> =>
  (await eventsOf(fx, layerId)).filter(
    (m): m is CommandResult => m.message_type === "CommandResult" && (correlationId === undefined || m.correlation_id === correlationId),
  );

export const transitionsOf = async (fx: Fixture, layerId: string, correlationId?: string): Promise<StateTransitionEvent[]> =>
  (await eventsOf(fx, layerId)).filter(
    (m): m is StateTransitionEvent => m.message_type === "StateTransitionEvent" && (correlationId === undefined || m.correlation_id === correlationId),
  );

export const deadLettersOf = (fx: Fixture, dlq: string): Promise<readonly DeadLetterRecord[]> => run(listDeadLetters(fx.bus, dlq, { count: 10_000 }));

export const pendingOf = (fx: Fixture, stream: string, group = "kasmina") => run(fx.bus.pending(stream, group));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` (a positive condition, never "nothing happened") until it returns something other than undefined/false; fails with `what` after `timeoutMs`. */
export const waitFor = async <T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 5_000, pollMs = 10): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await probe();
    if (got !== undefined && got !== false) return got;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(pollMs);
  }
};

/** Waits until the bridge has settled `n` entries in total (answered, dead-lettered or recognised as duplicates). */
export const settled = (running: RunningBridge, n: number, timeoutMs = 5_000): Promise<true> =>
  waitFor(`bridge of ${running.host.layerId} to settle ${n} entries (has ${running.bridge.stats().entries})`, () => running.bridge.stats().entries >= n, timeoutMs);

/**
 * Waits until the layer's group has been handed everything on `stream` and holds nothing
 * pending: every entry is settled, and since answers, events and acks land in one commit,
 * whatever those entries were going to cause has happened. Checks that follow ("no second
 * result", "nothing redelivered") then need no sleep.
 */
export const drained = (fx: Fixture, stream: string, group = "kasmina", timeoutMs = 5_000): Promise<true> =>
  waitFor(
    `the ${group} group of ${stream} to have nothing unread or pending`,
    async () => {
      const [info, last] = await Promise.all([run(fx.bus.groupInfo(stream, group)), run(fx.bus.lastId(stream))]);
      // At or past the stream's last entry: house-keeping may have trimmed the stream empty meanwhile (its last id is then 0-0).
      return info !== undefined && info.pending === 0 && compareStreamIds(parseStreamId(info.lastDeliveredId)!, parseStreamId(last)!) >= 0;
    },
    timeoutMs,
  );

/** A stored seed snapshot (P.state.layer.{L}), read as the bridge reads it; throws if it is not one. */
export const decodeSeed = (bytes: Uint8Array): PersistedSeed => {
  const parsed = decodeBody(bytes, "msgpack") as { context?: { seedId?: number } };
  const seed = readSeed(bytes, parsed.context?.seedId ?? -1);
  if (Result.isFailure(seed)) throw new Error(seed.failure);
  return seed.success;
};
