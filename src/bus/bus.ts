import { Context, Data, type Effect, type Scope } from "effect";

/**
 * The message plane's one interface. Two implementations pass one conformance suite
 * (test/conformance/): MemoryBus, the embedded default, and RedisBus over Redis Streams.
 *
 * The bus moves stream entries (a map of fields, `data` holding the encoded message as bytes);
 * it knows nothing of message schemas. Key names come from src/protocol/streams.ts.
 * Every method is an Effect whose failure is a BusError, so callers choose the retry policy.
 */

/** `data` is bytes; every other field (type, enc, sig, dead-letter fields...) is a string. */
export interface EntryFields {
  readonly data: Uint8Array;
  readonly type: string;
  readonly [field: string]: Uint8Array | string;
}

/**
 * Size of an entry's fields in bytes, as a reader's `maxEntryBytes` counts it. Fields made in
 * this process whose bytes do not exist yet (protocol/fast/in-process-entry.ts marks them with
 * `IN_PROCESS`) count 0: they never crossed a process boundary, and measuring them would encode them.
 */
export const IN_PROCESS: unique symbol = Symbol.for("esper.bus.inProcess");

export const entryBytes = (fields: EntryFields): number => {
  if ((fields as { readonly [IN_PROCESS]?: boolean })[IN_PROCESS] === true) return 0;
  let total = 0;
  for (const name of Object.keys(fields)) {
    const value: unknown = fields[name];
    total += Buffer.byteLength(name) + (typeof value === "string" ? Buffer.byteLength(value) : ArrayBuffer.isView(value) ? value.byteLength : 0);
  }
  return total;
};

/** What an entry over a reader's limit comes back as: no data, its `type` only when short. */
export const oversizeStub = (fields: EntryFields, bytes: number): { readonly fields: EntryFields; readonly oversize: number } => {
  const type = typeof fields.type === "string" && fields.type.length <= 64 ? fields.type : "";
  return { fields: { data: new Uint8Array(0), type }, oversize: bytes };
};

export interface Entry {
  readonly stream: string;
  /** Stream entry id, `ms-seq`. */
  readonly id: string;
  readonly fields: EntryFields;
  /** How many times this entry has been delivered to a consumer of the group (1 on first read). 0 outside groups. */
  readonly deliveries: number;
  /**
   * Set when the entry's fields add up to more than the reader's `maxEntryBytes`: their total
   * size in bytes. The fields were then left where they are (only a short `type` comes along,
   * `data` is empty), so a hostile entry costs the reader nothing; dead-letter it with the
   * `deadletter` commit op, which copies it on the server.
   */
  readonly oversize?: number;
}

export interface PendingEntry {
  readonly id: string;
  readonly consumer: string;
  readonly idleMs: number;
  readonly deliveries: number;
}

/** A reader creates its group at `0` (the whole stream) when it is missing, as at-least-once delivery wants. */
export interface ReaderOptions {
  readonly stream: string;
  readonly group: string;
  readonly consumer: string;
  /** Most entries per read. Default 128. */
  readonly count?: number;
  /** How long a read waits for new entries before returning []. Default 1000 ms. */
  readonly blockMs?: number;
  /**
   * Largest entry (all its fields together, in bytes) handed over whole; a larger one comes back
   * as an `oversize` stub. Default: no limit. On Redis the stub is made on the server, except
   * for the one entry a blocking read may wake with.
   */
  readonly maxEntryBytes?: number;
  /**
   * Most bytes one read hands over (entries counted whole, stubs not): a read stops at the entry
   * that passes it, however many `count` allows. Default: no limit.
   */
  readonly maxBatchBytes?: number;
  /**
   * When the group has vanished (Redis restarted without its data, or it was deleted): recreate
   * it over what the stream holds (true, the default), or fail the read with a `command_failed`
   * NOGROUP error so the owner can check what else was lost (false).
   */
  readonly recreateGroup?: boolean;
  /**
   * Read only while the lease hash `key` (Bus.lease, in the stream's Redis Cluster slot) names
   * `owner` (`holder#token`): once it does not, a read fails `conflict` on `key` and delivers
   * nothing, checked in the same atomic step as the delivery. A layer's owner reads this way, so
   * an owner paused past its lease wakes up deposed without taking any entry from its successor.
   */
  readonly fence?: { readonly key: string; readonly owner: string };
}

/**
 * A consumer-group member on one stream. On its first reads it returns what this consumer
 * already holds pending (left by a crash before ack), then new entries.
 * RedisBus gives each reader its own connection, because a blocking XREADGROUP holds one.
 */
export interface Reader {
  readonly read: Effect.Effect<readonly Entry[], BusError>;
}

/**
 * A hash value given as what it encodes, with the way to encode it: a bus makes the bytes when it
 * needs them. RedisBus does at once; MemoryBus only if the value is ever read back, so an
 * in-process commit does not encode the snapshots and answers nobody reads unless a worker
 * restarts or a command comes twice. The value must not change after the commit.
 */
export interface DeferredBytes {
  readonly encode: () => Uint8Array;
}

export type HashValue = Uint8Array | string | DeferredBytes;

/**
 * One operation of an atomic commit: all apply, or none. On Redis a commit is one script that
 * checks every key's type before writing anything, because MULTI/EXEC does not roll back a
 * command that fails at run time (an XADD to a key holding a hash would leave the rest applied).
 * `xdel` removes entries (dead-letter replay removes the letter in the same commit).
 * `absent` is a precondition, not a write: when any of its hash fields exists, the commit writes
 * nothing and fails with reason `conflict` (the bridge's duplicate check rides on its commit so,
 * instead of costing a round trip before it). `rotate` bounds a hash that only grows: once `key`
 * holds `atFields` fields, it becomes `to` (replacing what `to` held) and `key` starts empty.
 */
export type CommitOp =
  | { readonly op: "absent"; readonly key: string; readonly fields: readonly string[] }
  /** A precondition: the hash field holds exactly `value` (null: is missing), else the commit fails as a `conflict` naming `key`. */
  | { readonly op: "expect"; readonly key: string; readonly field: string; readonly value: string | null }
  /**
   * Moves entry `id` of `stream` to the dead-letter stream `dlq` and acks it in `group`. The entry
   * is copied where it lies (on Redis, by the script), so its fields need not travel to the
   * caller and back. See dead-letters.ts for the letter's fields.
   */
  | {
      readonly op: "deadletter";
      readonly dlq: string;
      readonly stream: string;
      readonly group: string;
      readonly id: string;
      readonly code: string;
      readonly error: string;
      readonly deliveries: number;
      readonly failedAt: number;
      readonly maxLen?: number;
    }
  /** `maxLen`: MAXLEN ~; absent: the bus's default; null: no trimming (control streams, see `trimDelivered`). */
  | { readonly op: "xadd"; readonly stream: string; readonly fields: EntryFields; readonly maxLen?: number | null }
  /** `values` may be a Map: a record keyed by ids gives V8 a new hidden class for every key. */
  | { readonly op: "hset"; readonly key: string; readonly values: Readonly<Record<string, HashValue>> | ReadonlyMap<string, HashValue> }
  | { readonly op: "ack"; readonly stream: string; readonly group: string; readonly ids: readonly string[] }
  | { readonly op: "xdel"; readonly stream: string; readonly ids: readonly string[] }
  | { readonly op: "rotate"; readonly key: string; readonly to: string; readonly atFields: number };

/** See Bus.streamInfo. */
export interface StreamInfo {
  readonly entriesAdded: number;
  readonly lastGeneratedId: string;
}

/** Who holds a lease, and the fencing token of that holding (Bus.lease). */
export interface Lease {
  /** Whether the holder that asked holds it now. */
  readonly held: boolean;
  /** Who holds it; null when nobody does. */
  readonly holder: string | null;
  /** The holding's fencing token: it grows with every new holding and never repeats (0: nobody holds it). */
  readonly token: number;
  /** How long the holding lasts unless renewed, in ms (0: nobody holds it). */
  readonly ttlMs: number;
}

/**
 * A lease request. The lease is a hash at `key` whose `owner` field holds `holder#token` while the
 * holding lasts: a commit that `expect`s that value lands only while its writer still holds the
 * lease (fencing), since a new holding changes it and an expired one removes it.
 */
export interface LeaseRequest {
  /**
   * `acquire` takes a free lease, or renews one's own; `renew` extends one's own holding `token`
   * only (a holding that ran out is not taken anew: it was lost); `resume` is `renew`, except that
   * a holding that ran out is taken up again, same token, when nobody has held the lease since
   * (its counter still says `token`: e.g. Redis was away longer than the lease); `release` gives
   * one's own up.
   */
  readonly op: "acquire" | "renew" | "resume" | "release";
  /** For `renew` and `resume`: the holding to extend. */
  readonly token?: number;
  readonly key: string;
  /** Where tokens are counted; kept for good, so a token is never handed out twice. */
  readonly counter: string;
  /** Who asks: unique to one process's holding (a restarted process is a new holder). */
  readonly holder: string;
  readonly ttlMs: number;
}

/** The field of a lease hash that commits `expect` (`holder#token`). */
export const LEASE_OWNER_FIELD = "owner";

export interface GroupInfo {
  readonly lastDeliveredId: string;
  readonly pending: number;
}

export interface DeadLetter {
  /** The dead-letter stream to append to (P.dlq.layer.{L} or P.dlq.all). */
  readonly dlq: string;
  readonly entry: Entry;
  readonly group: string;
  readonly code: string;
  readonly error: string;
}

/**
 * The message plane: streams of entries read in consumer groups, with acks, redelivery,
 * dead letters and atomic commits. Two implementations, one conformance suite: `MemoryBus` (the
 * embedded default, in process) and `makeRedisBus` / `connectRedis` (Redis Streams). Most code
 * only passes a bus to `startSystem`, `startClient` or `startTamiyo`; every method fails with a
 * BusError, and the caller chooses whether to retry.
 */
export interface Bus {
  /**
   * Entries never leave this process (MemoryBus): writers may attach the message instead of
   * encoding it (protocol/fast/in-process-entry.ts), and nothing is read by another program.
   */
  readonly inProcess: boolean;
  /**
   * Appends one entry, trimming with `MAXLEN ~ maxLen` (default 100000; null: no trimming, for
   * streams whose unread entries must never be trimmed away, see `trimDelivered`). Returns its id.
   * A bus with an outbox (RedisBus while Redis is unreachable) makes commands and events wait
   * there and returns their id once written; an entry of a droppable (telemetry) stream is
   * accepted without waiting and its id is returned as `""`.
   */
  readonly publish: (stream: string, fields: EntryFields, maxLen?: number | null) => Effect.Effect<string, BusError>;
  /** Appends many entries in one round trip (pipelined on Redis). Returns their ids in order. */
  readonly publishMany: (
    entries: ReadonlyArray<{ readonly stream: string; readonly fields: EntryFields }>,
    maxLen?: number | null,
  ) => Effect.Effect<readonly string[], BusError>;
  /** Creates the consumer group if missing (MKSTREAM). `startId` "0" = whole stream, "$" = only new entries. */
  readonly ensureGroup: (stream: string, group: string, startId?: "0" | "$") => Effect.Effect<void, BusError>;
  /** A group reader living as long as the Scope. */
  readonly reader: (options: ReaderOptions) => Effect.Effect<Reader, BusError, Scope.Scope>;
  /** Acknowledges entries of the group (XACK), which leave its pending list; returns how many were pending. */
  readonly ack: (stream: string, group: string, ids: readonly string[]) => Effect.Effect<number, BusError>;
  /** Entries pending in the group, oldest first, at most `count` (default 1000). */
  readonly pending: (stream: string, group: string, count?: number) => Effect.Effect<readonly PendingEntry[], BusError>;
  /**
   * Transfers entries idle for at least `minIdleMs` to `consumer` (XAUTOCLAIM); each counts one
   * more delivery. Pending entries whose data was trimmed or deleted leave the pending list.
   */
  readonly claimIdle: (
    stream: string,
    group: string,
    consumer: string,
    minIdleMs: number,
    count?: number,
    /** As ReaderOptions.maxEntryBytes. */
    maxEntryBytes?: number,
  ) => Effect.Effect<readonly Entry[], BusError>;
  /**
   * Makes `consumer` the holder of every entry pending in the group, whoever held it, without
   * counting a delivery (XCLAIM JUSTID): how a worker restarted under a new name takes over what
   * its predecessor left, to process it first and in order. Returns how many it took.
   */
  readonly takeOver: (stream: string, group: string, consumer: string) => Effect.Effect<number, BusError>;
  /**
   * Looks ahead in a stream, outside any group: entries after `afterId` whose `type` field is
   * `type`, among at most `count` entries, with fields only for those (an oversize one as a stub).
   * Returns them and the last id it looked at (`afterId` when there was nothing to look at).
   * How a layer finds an emergency stop queued behind a backlog without reading the backlog.
   */
  readonly scanFor: (
    stream: string,
    afterId: string,
    type: string,
    count: number,
    maxEntryBytes?: number,
  ) => Effect.Effect<{ readonly lastId: string; readonly found: readonly Entry[] }, BusError>;
  /**
   * Where a group stands: the id of the last entry delivered to it (`0-0` when none) and how many
   * entries it holds pending. undefined when the stream or the group does not exist.
   */
  readonly groupInfo: (stream: string, group: string) => Effect.Effect<GroupInfo | undefined, BusError>;
  /** Appends the entry with its reason to a dead-letter stream and acks it, atomically. */
  readonly deadLetter: (letter: DeadLetter) => Effect.Effect<string, BusError>;
  /** Applies every op or none. Returns the ids of the `xadd` and `deadletter` ops, in order. */
  readonly commit: (ops: readonly CommitOp[]) => Effect.Effect<readonly string[], BusError>;
  /** Takes, renews or gives up a lease with a fencing token, atomically (see LeaseRequest). */
  readonly lease: (request: LeaseRequest) => Effect.Effect<Lease, BusError>;
  /** The newest fencing token a lease's counter (LeaseRequest.counter) has issued; 0 before any. */
  readonly fencingToken: (counter: string) => Effect.Effect<number, BusError>;
  /** Entries with start <= id <= end ("-" and "+" are the ends, "(" before an id excludes it), at most `count`. */
  readonly range: (stream: string, start?: string, end?: string, count?: number) => Effect.Effect<readonly Entry[], BusError>;
  /** Plain XREAD: entries after `afterId`, waiting up to `blockMs` (0 = do not wait). For followers outside groups. */
  readonly readAfter: (stream: string, afterId: string, count?: number, blockMs?: number) => Effect.Effect<readonly Entry[], BusError>;
  /**
   * Id of the newest entry, `0-0` when the stream is empty or missing: a follower that starts
   * with `readAfter` from it sees only what comes next.
   */
  readonly lastId: (stream: string) => Effect.Effect<string, BusError>;
  /**
   * How many entries were ever appended to a stream and the id of the last (XINFO STREAM
   * `entries-added`, `last-generated-id`), read together; `{ 0, "0-0" }` for a missing stream.
   * A reader that counted what it read since a known point can tell from it whether a trim took
   * entries it never saw.
   */
  readonly streamInfo: (stream: string) => Effect.Effect<StreamInfo, BusError>;
  /** Every field of a hash (`{}` when it is missing). */
  readonly hgetall: (key: string) => Effect.Effect<Readonly<Record<string, Uint8Array>>, BusError>;
  /** Values of some fields of a hash, in the order asked; null for a field (or hash) that is missing. */
  readonly hmget: (key: string, fields: readonly string[]) => Effect.Effect<readonly (Uint8Array | null)[], BusError>;
  /** Number of entries in a stream (0 when it is missing). */
  readonly length: (stream: string) => Effect.Effect<number, BusError>;
  /**
   * Removes the entries every consumer group of the stream is done with: those older than each
   * group's oldest pending entry, or than its next undelivered one when nothing is pending
   * (XTRIM MINID). Unread and unacknowledged entries stay. Returns how many it removed; a stream
   * without groups is left alone. How control streams stay bounded without MAXLEN losing commands.
   */
  readonly trimDelivered: (stream: string) => Effect.Effect<number, BusError>;
  /** Trims to exactly `maxLen` entries (XTRIM MAXLEN, no `~`); returns how many it removed. */
  readonly trim: (stream: string, maxLen: number) => Effect.Effect<number, BusError>;
  /** Removes keys (streams, hashes). For tests, benchmarks and `esper` admin commands. */
  readonly del: (keys: readonly string[]) => Effect.Effect<void, BusError>;
}

/** The bus as an Effect service, so a program names what it needs and a Layer provides it. */
export class BusService extends Context.Service<BusService, Bus>()("esper/Bus") {}

export type BusErrorReason =
  /** The server could not be reached or the connection dropped; retry later. */
  | "unavailable"
  /** The outbox is at its bound while Redis is unreachable; the caller must slow down or fail. */
  | "outbox_full"
  /** The server answered with an error (wrong type, bad id...). Retrying will not help. */
  | "command_failed"
  /** A commit's precondition (an `absent` or `expect` op) did not hold; nothing was written. `key` names the hash. */
  | "conflict"
  /** The bus was shut down. */
  | "closed";

/**
 * Why a bus operation failed. `reason` says whether retrying can help: `unavailable` (Redis
 * unreachable: retry later), `outbox_full` (slow down), `command_failed` (the server refused it:
 * retrying will not help), `conflict` (a commit's precondition did not hold, nothing written),
 * `closed` (the bus was shut down). `EsperClient.send` rejects with one when its publish is refused.
 */
export class BusError extends Data.TaggedError("BusError")<{
  readonly reason: BusErrorReason;
  readonly message: string;
  readonly cause?: unknown;
  /** The hash whose precondition failed (reason `conflict`). */
  readonly key?: string;
}> {}

export const DEFAULT_MAXLEN = 100_000;
export const DEFAULT_READ_COUNT = 128;
export const DEFAULT_BLOCK_MS = 1_000;
export const DEFAULT_PENDING_COUNT = 1_000;
