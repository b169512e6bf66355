/**
 * The mailbox bridge: a layer's command streams -> its LayerHost -> its event stream.
 *
 * For each batch read from `P.control.layer.{L}` (group `kasmina`) or `P.control.all` (group
 * `kasmina.{L}`, so every layer sees every entry once):
 *   size check -> decode -> signature -> schema   (decodeEntry: a bad entry gets its code)
 *   -> duplicate check by message_id               (against P.results(_old).layer.{L}: see below)
 *   -> deadline (timeout_ms) and rate limit per source
 *   -> the layer actor, emergency stops first      (they overtake everything read with them)
 *   -> ONE commit: seed snapshots, events, results, dedupe records, acks.
 * The duplicate check rides on the commit: it writes only if none of the batch's ids has a stored
 * result. When one has (rare: a redelivery or a re-sent copy), the batch is rolled back, the
 * stored results are read, and it is settled again. A batch holding a redelivery reads first.
 * A crash anywhere before the commit means redelivery, and the dedupe record written in the
 * same commit makes redelivery harmless: each command takes effect exactly once per seed.
 * A commit that does not land rolls the layer back in memory to where the batch found it, so
 * the redelivered entries are judged from what was stored. Once read, a batch is finished and
 * committed even when the Scope closes meanwhile.
 */
import { hostname } from "node:os";
import { Data, Duration, Effect, Exit, Schedule, Semaphore, type Scope } from "effect";
import { RateLimiter } from "effect/persistence";
import type { Bus, BusError, CommitOp, DeferredBytes, Entry, EntryFields, HashValue } from "../bus/bus.ts";
import { runJanitor } from "../bus/janitor.ts";
import { decodeBody, encodeBody, type Codec } from "../protocol/codec.ts";
import { decodeEntry, encodeEntry, encodeEntryInProcess, type HmacKey } from "../protocol/entry.ts";
import { rejectionResult } from "../protocol/make.ts";
import { COMMAND_TYPES, type CommandResult, type Message } from "../protocol/messages.ts";
import { GROUPS, streams as streamNames, type Streams } from "../protocol/streams.ts";
import type { PersistedSeed } from "../../machines/seed.ts";
import { boundedMessage } from "./bounded-message.ts";
import type { LayerHost } from "./layer-host.ts";
import { commandResult, type CommandMessage, type HostedCommand } from "./messages.ts";
import { newMessageId } from "../protocol/message-id.ts";

export interface BridgeOptions {
  /** Key namespace P. Default: ESPER_NAMESPACE, else "morphogenetic". */
  readonly namespace?: string;
  /** This worker's consumer name in the groups. Default: `${hostname}-${pid}`. */
  readonly consumer?: string;
  /** Codec for what the bridge writes (events, results). Default "msgpack". */
  readonly codec?: Codec;
  /** The deployment's HMAC key: control entries must then carry a valid `sig`, and what the bridge writes is signed. */
  readonly hmacKey?: HmacKey;
  /** Largest accepted `data`, in bytes; what the bridge writes is kept within it too. Default 1 MiB. */
  readonly maxBytes?: number;
  /** Deliveries before an entry is dead-lettered. Default 5. */
  readonly maxDeliveries?: number;
  /** Pending this long means its consumer is presumed dead and the janitor claims it. Default 30 s. */
  readonly claimIdleMs?: number;
  /** Entries per read. Default 256. */
  readonly readCount?: number;
  /** How long a read waits for new entries. Default 1000 ms. */
  readonly blockMs?: number;
  /** Commands per `source` per second before `rate_limited`. Default 100000; 0 = no limit. */
  readonly ratePerSource?: number;
  /** MAXLEN ~ for the event stream. Default 100000. */
  readonly maxLen?: number;
  /**
   * How many answers are kept to recognise a command that comes again: the last `dedupeWindow`
   * to 2 x `dedupeWindow` commands (two generations of P.results.layer.{L}; the older is dropped
   * when the newer fills). A copy arriving later than that is applied again. Default 100000,
   * as the event stream's MAXLEN: what is still in the event stream can be recognised.
   */
  readonly dedupeWindow?: number;
  /**
   * How often the control streams are trimmed of what their groups are done with (delivered and
   * acknowledged). Clients publish commands without MAXLEN, so this is what bounds them. Default 5000 ms.
   */
  readonly trimEveryMs?: number;
  readonly clock?: () => number;
}

export const BRIDGE_DEFAULTS = {
  codec: "msgpack" as Codec,
  maxBytes: 1_048_576,
  maxDeliveries: 5,
  claimIdleMs: 30_000,
  readCount: 256,
  blockMs: 1_000,
  ratePerSource: 100_000,
  maxLen: 100_000,
  dedupeWindow: 100_000,
  trimEveryMs: 5_000,
};

export interface BridgeStats {
  /** Entries read and settled (answered, dead-lettered, or recognised as duplicates). */
  readonly entries: number;
  readonly applied: number;
  readonly duplicates: number;
  readonly deadLettered: number;
  readonly commits: number;
}

export interface LayerBridge {
  readonly layerId: string;
  readonly host: LayerHost;
  readonly stats: () => BridgeStats;
}

export class BridgeRestoreError extends Data.TaggedError("BridgeRestoreError")<{ readonly message: string }> {}

/** What one entry came to, before the batch commit. */
type Settled =
  | { readonly kind: "answer"; readonly entry: Entry; readonly stream: string; readonly result: CommandResult; readonly ops: readonly CommitOp[]; readonly applied: boolean }
  | { readonly kind: "dead"; readonly entry: Entry; readonly stream: string; readonly code: string; readonly error: string }
  /** Another layer's entry on P.control.all: acked, not answered. */
  | { readonly kind: "skip"; readonly entry: Entry; readonly stream: string };

const isCommand = (m: Message): m is CommandMessage => COMMAND_TYPES.has(m.message_type);
const layerOfCommand = (c: CommandMessage): string | null => (c.message_type === "BatchCommand" ? c.commands[0]!.layer_id : c.layer_id);

/** Seed snapshots travel as msgpack in the state hash, field = seed id in decimal. */
export const encodeSeed = (seed: PersistedSeed): Uint8Array => encodeBody(seed, "msgpack");
/** A snapshot or an answer for a hash, encoded only when a bus needs the bytes (a class: no closure per value). */
class Deferred implements DeferredBytes {
  constructor(private readonly value: unknown) {}
  encode(): Uint8Array {
    return encodeBody(this.value, "msgpack");
  }
}
// A copy: the host counts epoch ticks into its snapshot objects in place, and what is committed must not change after.
const deferredSeed = (seed: PersistedSeed): DeferredBytes => new Deferred({ state: seed.state, context: { ...seed.context } });
const deferredBody = (value: unknown): DeferredBytes => new Deferred(value);

/** What a batch writes besides its events: collected while its entries are settled, committed with them. */
interface BatchWrites {
  /** Answers given in this batch, by message id: a copy later in the same batch is a duplicate. */
  readonly seen: Map<string, CommandResult>;
  /** P.state.layer.{L}: seed id -> snapshot. */
  readonly state: Record<string, HashValue>;
  /** P.results.layer.{L}: message id -> CommandResult. */
  readonly results: Map<string, HashValue>;
}
export const decodeSeed = (bytes: Uint8Array): PersistedSeed => decodeBody(bytes, "msgpack") as PersistedSeed;

interface LayerMeta {
  readonly stopped: boolean;
  readonly reason: string | null;
}

/**
 * Starts the bridge for one layer in the current Scope: restores the layer from its state hash,
 * joins the consumer groups, and reads until the Scope closes (then the loop finishes the batch
 * in hand, commits, and the reader connections are released).
 */
export const runLayerBridge = (bus: Bus, host: LayerHost, options: BridgeOptions = {}): Effect.Effect<LayerBridge, BusError | BridgeRestoreError, Scope.Scope> =>
  Effect.gen(function* () {
    const o = { ...BRIDGE_DEFAULTS, ...definedOnly(options) };
    const clock = options.clock ?? Date.now;
    const names = streamNames(options.namespace);
    const layerId = host.layerId;
    const consumer = options.consumer ?? `${hostname()}-${process.pid}`;
    const keys = {
      control: names.control(layerId),
      all: names.controlAll,
      allGroup: `${GROUPS.kasmina}.${layerId}`,
      events: names.events(layerId),
      state: names.state(layerId),
      results: names.results(layerId),
      resultsOld: names.resultsOld(layerId),
      meta: names.layerKey("meta", layerId),
    };
    const stats = { entries: 0, applied: 0, duplicates: 0, deadLettered: 0, commits: 0 };

    /** The reason of the layer's emergency stop while one is in force (what P.meta.layer.{L} holds). */
    let stopReason = yield* restore(bus, host, keys);
    yield* bus.ensureGroup(keys.control, GROUPS.kasmina, "0");
    // A layer joins P.control.all from now on: stops sent before it ever existed are not its business.
    yield* bus.ensureGroup(keys.all, keys.allGroup, "$");

    const limiter = o.ratePerSource > 0 ? yield* RateLimiter.make.pipe(Effect.provide(RateLimiter.layerStoreMemory)) : null;
    // One batch at a time per layer: apply order = commit order = event stream order.
    const lock = yield* Semaphore.make(1);
    // Everything written stays within the size every reader accepts (bounded-message.ts).
    const encodeOptions = { stream: keys.events, codec: o.codec, ...(o.hmacKey !== undefined ? { hmacKey: o.hmacKey } : {}) };
    // In process the answer travels as the object it is (attached-entry.ts): nobody reads its bytes.
    const inProcessOptions = { ...encodeOptions, trusted: true };
    const decodeOptions = { maxBytes: o.maxBytes, ...(o.hmacKey !== undefined ? { hmacKey: o.hmacKey } : {}) };
    // Frozen: in process, every reader gets this very object (Redis would give each its own copy).
    const encode = bus.inProcess
      ? (message: Message) => encodeEntryInProcess(deepFreeze(message), inProcessOptions)
      : (message: Message) => boundedMessage(message, o.maxBytes, (m) => encodeEntry(m, encodeOptions));

    /**
     * What one entry comes to. Synchronous (the rate was taken for the whole batch before), so a
     * throw (a bug: the host answers bad commands, it does not throw) reaches the batch's
     * try/catch as an exception. `overRate`: its source is past its rate.
     */
    const settleOne = (stream: string, entry: Entry, message: ReturnType<typeof decodeEntry>, stored: Uint8Array | null, batch: BatchWrites, startedAt: number, overRate: boolean): Settled => {
      if (message._tag === "Failure") {
        const result = rejectionResult(message.failure, layerId, `esper.layer.${layerId}`);
        return result
          ? ({ kind: "answer", entry, stream, result, ops: [], applied: false } as const)
          : ({ kind: "dead", entry, stream, code: message.failure.code, error: message.failure.message } as const);
      }
      const m = message.success;
      if (!isCommand(m)) {
        return { kind: "dead", entry, stream, code: "invalid_message", error: `${m.message_type} is not a command; control streams carry commands only` } as const;
      }
      const target = layerOfCommand(m);
      // P.control.all carries every layer's entries; one naming another layer is that layer's to answer.
      if (stream === keys.all && target !== null && target !== layerId) return { kind: "skip", entry, stream } as const;
      const previous = stored ? (decodeBody(stored, "msgpack") as CommandResult) : batch.seen.get(m.message_id);
      if (previous) {
        // The same answer, as a message of its own: message ids are unique on the event stream too.
        const again = { ...previous, message_id: newMessageId(), timestamp: clock() / 1000, details: { ...previous.details, duplicate: true } };
        return { kind: "answer", entry, stream, result: again, ops: [], applied: false } as const;
      }
      const command: HostedCommand = target === null ? ({ ...m, layer_id: layerId } as HostedCommand) : m;
      const refusal =
        target !== null && target !== layerId
          ? refuse(command, layerId, "unknown_layer", `command for layer ${target} arrived on ${stream}, the stream of layer ${layerId}; send it to its own layer's stream`)
          : overdue(command, layerId, clock()) ??
            (overRate ? refuse(command, layerId, "rate_limited", `source ${command.source} sent more than ${o.ratePerSource} commands in one second; slow down and retry`) : null);
      const wasStopped = host.isStopped;
      const { result, transitions } = refusal ? { result: refusal, transitions: [] } : host.apply(command, startedAt);
      batch.seen.set(m.message_id, result);
      const ops: CommitOp[] = [];
      // Snapshots of the seeds it moved (a blueprint update changes its seed without a transition),
      // and its answer for the duplicate check: one hset each per batch, the last snapshot winning.
      for (const t of transitions) batch.state[t.seed_id] = deferredSeed(host.seed(t.seed_id));
      if (!refusal) for (const seedId of blueprintSeeds(command, host.numSeeds)) batch.state[seedId] = deferredSeed(host.seed(seedId));
      batch.results.set(m.message_id, deferredBody(result));
      // The layer's stop is stored when it changes (a second stop keeps the first reason, as the layer does).
      if (host.isStopped !== wasStopped) {
        stopReason = host.isStopped ? ((m as { reason?: string }).reason ?? "") : null;
        ops.push({ op: "hset", key: keys.meta, values: { layer: encodeBody({ stopped: host.isStopped, reason: stopReason } satisfies LayerMeta, "msgpack") } });
      }
      for (const t of transitions) ops.push({ op: "xadd", stream: keys.events, fields: encode(t), maxLen: o.maxLen });
      return { kind: "answer", entry, stream, result, ops, applied: !refusal } as const;
    };

    /**
     * What the layer held before a batch. The batch is applied in memory before its commit; when
     * the commit does not land, the layer goes back to this, so the redelivered entries are judged
     * from what was stored, as a restarted worker would judge them.
     */
    const checkpoint = () => {
      host.beginUndo();
      return { stopped: host.isStopped, reason: stopReason };
    };
    /** Back to the checkpoint; the host keeps recording, as the batch may be settled again. */
    const rollback = (before: ReturnType<typeof checkpoint>) => {
      if (host.isStopped !== before.stopped) host.apply(before.stopped ? stopOrder(layerId, before.reason ?? "") : resumeOrder(layerId));
      host.restore(host.endUndo());
      host.beginUndo();
      stopReason = before.reason;
    };

    /**
     * Settles and commits one batch. Once read, a batch runs to its commit even when the Scope
     * closes meanwhile (a graceful stop commits the batch in hand); only waiting for an
     * unreachable bus to come back can be interrupted, and then the batch is rolled back and its
     * entries stay pending for the next worker.
     */
    const handle = (stream: string, group: string, entries: readonly Entry[]): Effect.Effect<void, BusError> =>
      entries.length === 0
        ? Effect.void
        : Semaphore.withPermit(
            lock,
            Effect.uninterruptibleMask((interruptible) => {
              const before = checkpoint();
              const startedAt = clock();
              const decoded = entries.map((entry) => ({ entry, message: decodeEntry(stream, entry.fields, decodeOptions) }));
              const ids = decoded.map((d) => (d.message._tag === "Success" && isCommand(d.message.success) ? d.message.success.message_id : ""));
              // Emergency stops overtake everything read with them (stable for the rest).
              const order = decoded.map((_, i) => i).sort((a, b) => urgency(decoded[a]!.message) - urgency(decoded[b]!.message));

              /**
               * Settles every entry and commits. `known`: the stored results of the batch's ids, when
               * they were read first; null when the commit itself checks that none is stored.
               */
              const settleAndCommit = (known: readonly (Uint8Array | null)[] | null) =>
                Effect.gen(function* () {
                  const settled: Settled[] = [];
                  const batch: BatchWrites = { seen: new Map(), state: {}, results: new Map() };
                  for (const i of order) {
                    const { entry, message } = decoded[i]!;
                    try {
                      settled.push(settleOne(stream, entry, message, known !== null && ids[i] ? (known[i] ?? null) : null, batch, startedAt, overRate.has(i)));
                    } catch (error) {
                      // A bug, not a bad command: the entry is set aside where an operator sees it, and the worker goes on.
                      settled.push({ kind: "dead", entry, stream, code: "internal", error: `the bridge could not process this entry: ${error instanceof Error ? error.message : String(error)}` });
                    }
                  }
                  // Every id answered here for the first time must still have no stored answer when
                  // the commit runs (another consumer may have answered it since it was read).
                  const fresh = ids.filter((id, i) => id !== "" && (known === null || known[i] == null));
                  const precondition: CommitOp[] =
                    fresh.length > 0
                      ? [
                          { op: "absent", key: keys.results, fields: fresh },
                          { op: "absent", key: keys.resultsOld, fields: fresh },
                        ]
                      : [];
                  const hashes: CommitOp[] = [
                    { op: "hset", key: keys.state, values: batch.state },
                    { op: "rotate", key: keys.results, to: keys.resultsOld, atFields: o.dedupeWindow },
                    { op: "hset", key: keys.results, values: batch.results },
                  ];
                  yield* commitBatch(bus, settled, precondition, hashes, group, keys.events, encode, names, o.maxLen, interruptible, { key: keys.meta, field: `commit.${consumer}` });
                  // Counted once committed: a batch rolled back and delivered again counts once.
                  stats.commits++;
                  stats.entries += entries.length;
                  for (const s of settled) {
                    if (s.kind === "dead") stats.deadLettered++;
                    else if (s.kind === "answer" && s.applied) stats.applied++;
                    else if (s.kind === "answer" && s.result.details.duplicate === true) stats.duplicates++;
                  }
                });
              const asked = ids.map((id) => id || "-");
              // Built only when needed (rarely): a bus call builds its guard, retry policy and all, when called.
              const readKnown = Effect.suspend(() =>
                Effect.zipWith(bus.hmget(keys.results, asked), bus.hmget(keys.resultsOld, asked), (now, old) => now.map((v, i) => v ?? old[i] ?? null)),
              );
              const overRate = new Set<number>();

              // Most batches hold only new commands: apply them at once and let the commit refuse if
              // one was applied before (saving a round trip per batch); on that refusal, or when the
              // batch holds a redelivery (likely applied before), read what is stored first.
              const redelivered = entries.some((e) => e.deliveries > 1);
              const rated = limiter ? takeRate(limiter, decoded, o.ratePerSource, overRate) : Effect.void;
              const settle = redelivered
                ? Effect.flatMap(readKnown, settleAndCommit)
                : settleAndCommit(null).pipe(
                    Effect.catchIf(
                      (error: BusError) => error.reason === "conflict",
                      () => Effect.suspend(() => {
                        rollback(before);
                        return Effect.flatMap(readKnown, settleAndCommit);
                      }),
                    ),
                  );
              return Effect.andThen(rated, settle).pipe(
                Effect.onExit((exit) =>
                  Effect.sync(() => {
                    if (Exit.isFailure(exit)) rollback(before);
                    host.endUndo();
                  }),
                ),
              );
            }),
          );

    const loop = (stream: string, group: string) =>
      Effect.gen(function* () {
        const reader = yield* bus.reader({ stream, group, consumer, count: o.readCount, blockMs: o.blockMs });
        yield* Effect.forever(
          reader.read.pipe(
            Effect.flatMap((entries) => handle(stream, group, entries)),
            // The bus is away: wait and read again; the entries stay pending and nothing is lost.
            Effect.catchTag("BusError", (error) => (error.reason === "closed" ? Effect.interrupt : Effect.logWarning(`layer ${layerId}: ${error.message}`).pipe(Effect.andThen(Effect.sleep(100))))),
            // A bug must not stop the layer from consuming: report it and read on (the batch stays pending).
            Effect.catchDefect((defect) => Effect.logError(`layer ${layerId}: ${stream}: ${String(defect)}`).pipe(Effect.andThen(Effect.sleep(100)))),
          ),
        );
      });

    yield* Effect.forkScoped(loop(keys.control, GROUPS.kasmina));
    yield* Effect.forkScoped(loop(keys.all, keys.allGroup));
    for (const [stream, group] of [[keys.control, GROUPS.kasmina], [keys.all, keys.allGroup]] as const) {
      yield* runJanitor(bus, {
        stream,
        group,
        consumer,
        dlq: names.dlqFor(stream),
        idleMs: o.claimIdleMs,
        maxDeliveries: o.maxDeliveries,
        handle: (entries) => handle(stream, group, entries),
      });
    }
    // What every group has read and acknowledged goes; unread and pending commands stay.
    const trimOnce = Effect.forEach([keys.control, keys.all], (stream) => bus.trimDelivered(stream), { discard: true }).pipe(
      Effect.catchCause((cause) => Effect.logWarning(`layer ${layerId}: trimming the control streams failed`, { cause })),
    );
    yield* Effect.forkScoped(Effect.repeat(trimOnce, Schedule.spaced(Math.max(10, o.trimEveryMs))));
    return { layerId, host, stats: () => ({ ...stats }) };
  });

/**
 * One atomic commit for the whole batch. The first attempt runs to its end whatever happens
 * (the caller is uninterruptible); retries while the bus is unreachable go on until it lands,
 * but through `interruptible`, so a closing Scope can give up on a bus that does not come back.
 */
const commitBatch = (
  bus: Bus,
  settled: readonly Settled[],
  /** Checked before anything is written (the batch's ids are not answered yet). */
  precondition: readonly CommitOp[],
  /** The batch's snapshots and answers (hsets). */
  hashes: readonly CommitOp[],
  group: string,
  events: string,
  encode: (m: Message) => EntryFields,
  names: Streams,
  maxLen: number,
  interruptible: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>,
  /** Where the commit leaves its token (one field per consumer: its commits are serialized by the layer's lock). */
  marker: { readonly key: string; readonly field: string },
): Effect.Effect<void, BusError> => {
  const ops: CommitOp[] = [...precondition];
  const acks = new Map<string, string[]>();
  for (const s of settled) {
    if (s.kind === "dead") {
      ops.push({
        op: "xadd",
        stream: names.dlqFor(s.stream),
        fields: { ...s.entry.fields, stream: s.stream, id: s.entry.id, code: s.code, error: s.error, deliveries: String(s.entry.deliveries), failed_at: String(Date.now()) },
        maxLen,
      });
    } else if (s.kind === "answer") {
      ops.push(...s.ops);
      ops.push({ op: "xadd", stream: events, fields: encode(s.result), maxLen });
    }
    const list = acks.get(s.stream) ?? [];
    list.push(s.entry.id);
    acks.set(s.stream, list);
  }
  ops.push(...hashes);
  for (const [stream, ids] of acks) ops.push({ op: "ack", stream, group, ids });
  const token = newMessageId();
  ops.push({ op: "hset", key: marker.key, values: { [marker.field]: token } });
  const retryable = (error: BusError) => error.reason === "unavailable" || error.reason === "outbox_full";
  const commit = bus.commit(ops);
  // A failed attempt may still have landed: Redis ran it but its reply was lost (connection cut)
  // or came after the call's time limit. Running it again would append its events and results a
  // second time, so each retry first reads the token back (on the same connection, behind the
  // attempt) and commits only if it is not there.
  const landed = Effect.suspend(() => Effect.map(bus.hmget(marker.key, [marker.field]), ([stored]) => stored != null && Buffer.from(stored).toString("utf8") === token));
  const again = Effect.flatMap(landed, (done) => (done ? Effect.void : Effect.asVoid(commit)));
  return commit.pipe(Effect.catchIf(retryable, () => interruptible(again.pipe(Effect.retry({ schedule: COMMIT_RETRY, while: retryable })))), Effect.asVoid);
};

/** Exponential from 20 ms, capped at 2 s, jittered, without end: a commit must land eventually. */
const COMMIT_RETRY = Schedule.min([Schedule.exponential("20 millis"), Schedule.spaced("2 seconds")]).pipe(Schedule.jittered);

const urgency = (decoded: { _tag: string; success?: Message }): number =>
  decoded._tag === "Success" && decoded.success?.message_type === "EmergencyStopCommand" ? 0 : 1;

const refuse = (command: HostedCommand, layerId: string, code: CommandResult["code"], error: string, details: Record<string, unknown> = {}): CommandResult =>
  commandResult({
    source: `esper.layer.${layerId}`,
    layerId,
    command,
    seedId: "seed_id" in command && typeof command.seed_id === "number" ? command.seed_id : null,
    code,
    error,
    details,
    elapsedMs: 0,
  });

/** Seeds whose blueprint a command may set (existing ones only). */
const blueprintSeeds = (command: HostedCommand, numSeeds: number): number[] => {
  const orders = command.message_type === "BlueprintUpdateCommand" ? [command] : command.message_type === "BatchCommand" ? command.commands : [];
  return orders.flatMap((c) => (c.message_type === "BlueprintUpdateCommand" && c.seed_id < numSeeds ? [c.seed_id] : []));
};

/**
 * A command whose sender has stopped waiting (timeout_ms since it was sent) is answered, not
 * applied. Not an emergency stop: stopping is never too late, and a layer whose worker was down
 * when a stop was sent must still apply it when it comes back (PROTOCOL.md, P.control.all).
 */
const overdue = (command: HostedCommand, layerId: string, now: number): CommandResult | null => {
  if (command.message_type === "EmergencyStopCommand") return null;
  const timeoutMs = command.timeout_ms;
  const sentAt = (command as { timestamp?: number }).timestamp;
  if (!timeoutMs || sentAt === undefined) return null;
  const waited = now - sentAt * 1000;
  return waited > timeoutMs
    ? refuse(command, layerId, "timeout", `waited ${Math.round(waited)} ms since it was sent, longer than its timeout_ms ${timeoutMs}; not applied`, { waited_ms: Math.round(waited) })
    : null;
};

/**
 * Takes each source's tokens for all its commands in the batch at once: one RateLimiter call per
 * source per batch, not per command (that cost a kilobyte of garbage a command). For a source
 * whose commands do not all fit, they are taken one by one, and exactly those beyond the limit
 * go into `over` (by position in the batch; a refused take takes nothing). Every command read
 * counts toward its source's rate, a copy or an overdue one too: the source sent it.
 */
const takeRate = (
  limiter: RateLimiter.RateLimiter,
  decoded: ReadonlyArray<{ readonly message: ReturnType<typeof decodeEntry> }>,
  perSecond: number,
  over: Set<number>,
): Effect.Effect<void> => {
  const bySource = new Map<string, number[]>();
  decoded.forEach(({ message }, i) => {
    if (message._tag !== "Success" || !isCommand(message.success)) return;
    const list = bySource.get(message.success.source);
    if (list === undefined) bySource.set(message.success.source, [i]);
    else list.push(i);
  });
  const take = (source: string, tokens: number) =>
    limiter.consume({ key: `source:${source}`, limit: perSecond, window: Duration.seconds(1), tokens, onExceeded: "fail", algorithm: "fixed-window" }).pipe(
      Effect.as(true),
      Effect.catch(() => Effect.succeed(false)),
    );
  return Effect.forEach(
    bySource,
    ([source, indices]) =>
      Effect.flatMap(take(source, indices.length), (all) =>
        all ? Effect.void : Effect.forEach(indices, (i) => Effect.map(take(source, 1), (ok) => void (ok || over.add(i))), { discard: true }),
      ),
    { discard: true },
  );
};

/** The orders the bridge gives its own layer to put a stop back, or lift it, when it restores the layer. */
const stopOrder = (layerId: string, reason: string): HostedCommand =>
  ({ message_type: "EmergencyStopCommand", message_id: `restore-${layerId}`, source: "esper.restore", layer_id: layerId, seed_id: null, reason }) as HostedCommand;
const resumeOrder = (layerId: string): HostedCommand => ({ message_type: "ResumeCommand", message_id: `restore-${layerId}`, source: "esper.restore", layer_id: layerId }) as HostedCommand;

/**
 * Rebuilds the layer from its state hash and meta key, so a restarted worker resumes where the
 * last one committed. Returns the reason of the stop in force, if any. The stop goes first: its
 * sweep must not move the seeds restored after it.
 */
const restore = (bus: Bus, host: LayerHost, keys: { readonly state: string; readonly meta: string }): Effect.Effect<string | null, BusError | BridgeRestoreError> =>
  Effect.gen(function* () {
    const metaBytes = (yield* bus.hgetall(keys.meta)).layer;
    const meta = metaBytes ? (decodeBody(metaBytes, "msgpack") as LayerMeta) : undefined;
    const reason = meta?.stopped ? (meta.reason ?? "restored") : null;
    if (reason !== null) host.apply(stopOrder(host.layerId, reason));
    const stored = yield* bus.hgetall(keys.state);
    const seeds = new Map<number, PersistedSeed>();
    for (const [field, bytes] of Object.entries(stored)) {
      const seedId = Number(field);
      if (!Number.isInteger(seedId) || seedId < 0 || seedId >= host.numSeeds) {
        return yield* new BridgeRestoreError({ message: `${keys.state} holds seed ${field}, but layer ${host.layerId} has ${host.numSeeds} seeds; start the worker with the seed count it was created with, or delete the key` });
      }
      seeds.set(seedId, decodeSeed(bytes));
    }
    host.restore(seeds);
    return reason;
  });

/** Freezes a message and the maps and lists in it (they are small: a result's details, an event's metrics). */
const deepFreeze = <T>(value: T): T => {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value) && !(value instanceof Uint8Array)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
};

const definedOnly = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

