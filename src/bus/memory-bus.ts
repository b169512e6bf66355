import { Clock, Effect, Layer, type Scope } from "effect";
import {
  BusError,
  BusService,
  DEFAULT_BLOCK_MS,
  DEFAULT_MAXLEN,
  DEFAULT_PENDING_COUNT,
  DEFAULT_READ_COUNT,
  entryBytes,
  oversizeStub,
  type Bus,
  type CommitOp,
  type DeadLetter,
  type DeferredBytes,
  type Entry,
  type EntryFields,
  type GroupInfo,
  type HashValue,
  type Lease,
  type LeaseRequest,
  type StreamInfo,
  LEASE_OWNER_FIELD,
  type PendingEntry,
  type Reader,
  type ReaderOptions,
} from "./bus.ts";
import { commitShapeError, conflictError } from "./commit.ts";
import { deadLetterOp, letterFields } from "./dead-letters.ts";
import { MemoryStream, type Stored } from "./memory-stream.ts";
import { formatStreamId, isStreamId, parseRangeBound, parseStreamId } from "./stream-id.ts";

/** Options of `new MemoryBus(options)`. */
export interface MemoryBusOptions {
  /** Entries a stream keeps when a publish or an xadd names no MAXLEN (older ones are trimmed). Default 100000. */
  readonly maxLen?: number;
}

/** Where a group member stands in the stream: what it holds pending, who holds it, since when. */
interface Pending {
  readonly stored: Stored;
  consumer: string;
  deliveries: number;
  deliveredAt: number;
}

interface Group {
  /** Absolute position of the next entry never delivered to this group (Redis: last-delivered id + 1). */
  cursor: number;
  /** Id of the last entry delivered to the group, `0-0` before the first. */
  lastDelivered: string;
  /** Insertion order is id order: new deliveries only ever append, and claims update in place. */
  readonly pel: Map<string, Pending>;
}

type Stream = MemoryStream<Group>;

interface ReaderState {
  readonly stream: string;
  readonly group: string;
  readonly consumer: string;
  readonly count: number;
  readonly blockMs: number;
  readonly maxEntryBytes: number;
  readonly maxBatchBytes: number;
  readonly fence: ReaderOptions["fence"];
  /** Reading back what this consumer already holds, as XREADGROUP with id 0 does after a restart. */
  draining: boolean;
  drainAfter: number;
  closed: boolean;
}

const EMPTY: readonly Entry[] = [];
const encoder = new TextEncoder();

const failure = (message: string) => new BusError({ reason: "command_failed", message });
const wrongType = (key: string) => failure(`WRONGTYPE Operation against a key holding the wrong kind of value (${key})`);
const noGroup = (stream: string, group: string) => failure(`NOGROUP No such key '${stream}' or consumer group '${group}'`);
const badId = (id: string) => failure(`ERR Invalid stream ID specified as stream command argument: ${id}`);

/** The current time in ms, from the Clock of the fiber that runs the operation (TestClock in tests). */
const withNow = <A, E>(f: (now: number) => Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.clockWith((clock) => Effect.suspend(() => f(clock.currentTimeMillisUnsafe())));

/**
 * The embedded bus: Redis Streams semantics (ids, consumer groups, pending entries lists,
 * claims, dead letters, atomic commits) in one process, without Redis.
 *
 * Entries are stored by reference and never copied: a publisher must not mutate the fields it
 * published. `MAXLEN ~` trims exactly (cheap here: trimming moves an index). Entry ids, idle
 * times and block times come from Effect's Clock, so a TestClock drives them in tests.
 */
export class MemoryBus implements Bus {
  static layer(options: MemoryBusOptions = {}): Layer.Layer<BusService> {
    return Layer.sync(BusService, () => new MemoryBus(options));
  }

  readonly inProcess = true;
  private readonly maxLen: number;
  private readonly streams = new Map<string, Stream>();
  /** Values stay as committed (a DeferredBytes is encoded on its first read, see `bytesOf`). */
  private readonly hashes = new Map<string, Map<string, Uint8Array | DeferredBytes>>();
  /** When each lease hash expires (Redis: its PEXPIRE); looked at whenever a lease or a commit reads it. */
  private readonly expiries = new Map<string, number>();
  private readonly counters = new Map<string, number>();
  /** Blocked readers by stream key; a key may have waiters before it exists. */
  private readonly waiters = new Map<string, Set<() => void>>();
  /** Streams appended to whose blocked readers have not been woken yet. */
  private readonly toWake = new Set<string>();

  constructor(options: MemoryBusOptions = {}) {
    this.maxLen = options.maxLen ?? DEFAULT_MAXLEN;
  }

  readonly publish = (stream: string, fields: EntryFields, maxLen?: number | null): Effect.Effect<string, BusError> =>
    withNow((now) => {
      const target = this.streamFor(stream, true);
      return target instanceof BusError ? Effect.fail(target) : Effect.succeed(this.append(target, fields, maxLen, now).first.id);
    });

  readonly publishMany = (
    entries: ReadonlyArray<{ readonly stream: string; readonly fields: EntryFields }>,
    maxLen?: number | null,
  ): Effect.Effect<readonly string[], BusError> =>
    withNow((now) => {
      for (const { stream } of entries) if (this.hashes.has(stream)) return Effect.fail(wrongType(stream));
      return Effect.succeed(entries.map(({ stream, fields }) => this.append(this.streamFor(stream, true) as Stream, fields, maxLen, now).first.id));
    });

  readonly ensureGroup = (stream: string, group: string, startId: "0" | "$" = "$"): Effect.Effect<void, BusError> =>
    Effect.suspend(() => {
      const target = this.streamFor(stream, true);
      if (target instanceof BusError) return Effect.fail(target);
      if (!target.groups.has(group)) {
        const atEnd = startId === "$";
        target.groups.set(group, { cursor: atEnd ? target.end : 0, lastDelivered: atEnd ? (target.newest()?.first.id ?? "0-0") : "0-0", pel: new Map() });
      }
      return Effect.void;
    });

  readonly reader = (options: ReaderOptions): Effect.Effect<Reader, BusError, Scope.Scope> =>
    Effect.acquireRelease(
      Effect.flatMap(this.ensureGroup(options.stream, options.group, "0"), () =>
        Effect.sync(() => {
          const state: ReaderState = {
            stream: options.stream,
            group: options.group,
            consumer: options.consumer,
            count: options.count ?? DEFAULT_READ_COUNT,
            blockMs: options.blockMs ?? DEFAULT_BLOCK_MS,
            maxEntryBytes: options.maxEntryBytes ?? Number.POSITIVE_INFINITY,
            maxBatchBytes: options.maxBatchBytes ?? Number.POSITIVE_INFINITY,
            fence: options.fence,
            draining: true,
            drainAfter: -1,
            closed: false,
          };
          return { state, reader: { read: this.blocking(state.stream, state.blockMs, (now) => this.readGroup(state, now)) } };
        }),
      ),
      ({ state }) =>
        Effect.sync(() => {
          state.closed = true;
        }),
    ).pipe(Effect.map(({ reader }) => reader));

  readonly ack = (stream: string, group: string, ids: readonly string[]): Effect.Effect<number, BusError> =>
    Effect.suspend(() => {
      const target = this.streamFor(stream, false);
      if (target instanceof BusError) return Effect.fail(target);
      for (const id of ids) if (!isStreamId(id)) return Effect.fail(badId(id));
      return Effect.succeed(target === undefined ? 0 : this.ackIds(target, group, ids));
    });

  readonly pending = (stream: string, group: string, count = DEFAULT_PENDING_COUNT): Effect.Effect<readonly PendingEntry[], BusError> =>
    withNow((now) => {
      const found = this.groupOf(stream, group);
      if (found instanceof BusError) return Effect.fail(found);
      const out: PendingEntry[] = [];
      for (const [id, p] of found.group.pel) {
        if (out.length >= count) break;
        out.push({ id, consumer: p.consumer, idleMs: now - p.deliveredAt, deliveries: p.deliveries });
      }
      return Effect.succeed(out);
    });

  readonly claimIdle = (
    stream: string,
    group: string,
    consumer: string,
    minIdleMs: number,
    count = DEFAULT_READ_COUNT,
    maxEntryBytes = Number.POSITIVE_INFINITY,
  ): Effect.Effect<readonly Entry[], BusError> =>
    withNow((now) => {
      const found = this.groupOf(stream, group);
      if (found instanceof BusError) return Effect.fail(found);
      const { target, group: g } = found;
      const out: Entry[] = [];
      for (const [id, p] of g.pel) {
        if (out.length >= count) break;
        if (now - p.deliveredAt < minIdleMs) continue;
        if (target.isGone(p.stored)) {
          g.pel.delete(id);
          continue;
        }
        p.consumer = consumer;
        p.deliveries += 1;
        p.deliveredAt = now;
        out.push(delivered(stream, id, p.stored.first.fields, p.deliveries, maxEntryBytes));
      }
      return Effect.succeed(out);
    });

  readonly takeOver = (stream: string, group: string, consumer: string): Effect.Effect<number, BusError> =>
    Effect.suspend(() => {
      const found = this.groupOf(stream, group);
      if (found instanceof BusError) return Effect.fail(found);
      let taken = 0;
      for (const p of found.group.pel.values()) {
        if (p.consumer === consumer) continue;
        p.consumer = consumer;
        taken++;
      }
      return Effect.succeed(taken);
    });

  readonly scanFor = (
    stream: string,
    afterId: string,
    type: string,
    count: number,
    maxEntryBytes = Number.POSITIVE_INFINITY,
  ): Effect.Effect<{ readonly lastId: string; readonly found: readonly Entry[] }, BusError> =>
    Effect.suspend(() => {
      const target = this.streamFor(stream, false);
      if (target instanceof BusError) return Effect.fail(target);
      const after = parseStreamId(afterId);
      if (after === undefined) return Effect.fail(badId(afterId));
      const looked = target === undefined ? [] : target.slice({ id: after, exclusive: true }, undefined, count);
      const found: Entry[] = [];
      for (const stored of looked) {
        if (stored.first.fields.type !== type) continue;
        found.push(delivered(stream, stored.first.id, stored.first.fields, 0, maxEntryBytes));
      }
      return Effect.succeed({ lastId: looked.length === 0 ? afterId : looked[looked.length - 1]!.first.id, found });
    });

  readonly groupInfo = (stream: string, group: string): Effect.Effect<GroupInfo | undefined, BusError> =>
    Effect.suspend(() => {
      const target = this.streamFor(stream, false);
      if (target instanceof BusError) return Effect.fail(target);
      const g = target?.groups.get(group);
      return Effect.succeed(g === undefined ? undefined : { lastDeliveredId: g.lastDelivered, pending: g.pel.size });
    });

  readonly deadLetter = (letter: DeadLetter): Effect.Effect<string, BusError> =>
    withNow((now) => Effect.map(this.commit([deadLetterOp(letter, now)]), (ids) => ids[0]!));

  readonly lease = (request: LeaseRequest): Effect.Effect<Lease, BusError> =>
    withNow((now): Effect.Effect<Lease, BusError> => {
      this.expireDue(request.key, now);
      const hash = this.hashes.get(request.key);
      const field = (name: string): string | null => {
        const bytes = hash === undefined ? null : bytesOf(hash, name);
        return bytes === null ? null : Buffer.from(bytes).toString("utf8");
      };
      const current = field("holder");
      if (request.op === "release") {
        if (current === request.holder) {
          this.hashes.delete(request.key);
          this.expiries.delete(request.key);
        }
        return Effect.succeed({ held: false, holder: null, token: 0, ttlMs: 0 });
      }
      if (current === request.holder && (request.op === "acquire" || Number(field("token")) === request.token)) {
        this.expiries.set(request.key, now + request.ttlMs);
        return Effect.succeed({ held: true, holder: current, token: Number(field("token")), ttlMs: request.ttlMs });
      }
      if (request.op !== "acquire" && current === null) {
        // A lapsed holding is taken up again only by resume, and only if no one has held the lease since.
        if (request.op !== "resume" || request.token === undefined || this.counters.get(request.counter) !== request.token) return Effect.succeed({ held: false, holder: null, token: 0, ttlMs: 0 });
        const token = request.token;
        this.hashes.set(request.key, new Map([["holder", encoder.encode(request.holder)], ["token", encoder.encode(String(token))], [LEASE_OWNER_FIELD, encoder.encode(`${request.holder}#${token}`)]]));
        this.expiries.set(request.key, now + request.ttlMs);
        return Effect.succeed({ held: true, holder: request.holder, token, ttlMs: request.ttlMs });
      }
      if (current !== null) return Effect.succeed({ held: false, holder: current, token: Number(field("token")), ttlMs: Math.max(0, this.expiries.get(request.key)! - now) });
      const token = (this.counters.get(request.counter) ?? 0) + 1;
      this.counters.set(request.counter, token);
      this.hashes.set(request.key, new Map([["holder", encoder.encode(request.holder)], ["token", encoder.encode(String(token))], [LEASE_OWNER_FIELD, encoder.encode(`${request.holder}#${token}`)]]));
      this.expiries.set(request.key, now + request.ttlMs);
      return Effect.succeed({ held: true, holder: request.holder, token, ttlMs: request.ttlMs });
    });

  readonly fencingToken = (counter: string): Effect.Effect<number, BusError> => Effect.sync(() => this.counters.get(counter) ?? 0);

  private expireDue(key: string, now: number): void {
    const at = this.expiries.get(key);
    if (at !== undefined && at <= now) {
      this.expiries.delete(key);
      this.hashes.delete(key);
    }
  }

  readonly commit = (ops: readonly CommitOp[]): Effect.Effect<readonly string[], BusError> =>
    withNow((now) => {
      const invalid = this.validate(ops);
      if (invalid !== undefined) return Effect.fail(invalid);
      for (const op of ops) {
        if (op.op === "expect" || op.op === "absent") this.expireDue(op.key, now);
        if (op.op === "absent") {
          const hash = this.hashes.get(op.key);
          const present = hash === undefined ? [] : op.fields.filter((field) => hash.has(field));
          if (present.length > 0) return Effect.fail(conflictError(op.key, `already holds ${present.join(", ")}`));
        } else if (op.op === "expect") {
          const held = this.hashes.get(op.key) === undefined ? null : bytesOf(this.hashes.get(op.key)!, op.field);
          const value = held === null ? null : Buffer.from(held).toString("utf8");
          if (value !== op.value) return Effect.fail(conflictError(op.key, `field ${op.field} holds ${value === null ? "nothing" : JSON.stringify(value)}, expected ${op.value === null ? "nothing" : JSON.stringify(op.value)}`));
        }
      }
      const ids: string[] = [];
      for (const op of ops) {
        switch (op.op) {
          case "absent":
          case "expect":
            break;
          case "rotate": {
            const full = this.hashes.get(op.key);
            if (full !== undefined && full.size >= op.atFields) {
              this.hashes.set(op.to, full);
              this.hashes.delete(op.key);
            }
            break;
          }
          case "xadd":
            ids.push(this.append(this.streamFor(op.stream, true) as Stream, op.fields, op.maxLen, now).first.id);
            break;
          case "deadletter": {
            const source = this.streams.get(op.stream);
            const [found] = source === undefined ? [] : source.slice({ id: parseStreamId(op.id)!, exclusive: false }, { id: parseStreamId(op.id)!, exclusive: false }, 1);
            const fields = letterFields(found?.first.fields, op);
            ids.push(this.append(this.streamFor(op.dlq, true) as Stream, fields, op.maxLen, now).first.id);
            if (source !== undefined) this.ackIds(source, op.group, [op.id]);
            break;
          }
          case "hset": {
            let hash = this.hashes.get(op.key);
            if (hash === undefined) this.hashes.set(op.key, (hash = new Map()));
            const entries = op.values instanceof Map ? op.values : Object.entries(op.values);
            for (const [field, value] of entries as Iterable<[string, HashValue]>) hash.set(field, typeof value === "string" ? encoder.encode(value) : value);
            break;
          }
          case "ack": {
            const target = this.streams.get(op.stream);
            if (target !== undefined) this.ackIds(target, op.group, op.ids);
            break;
          }
          case "xdel":
            this.streams.get(op.stream)?.remove(op.ids.map((id) => parseStreamId(id)!));
            break;
        }
      }
      return Effect.succeed(ids);
    });

  readonly range = (stream: string, start = "-", end = "+", count?: number): Effect.Effect<readonly Entry[], BusError> =>
    Effect.suspend(() => {
      const target = this.streamFor(stream, false);
      if (target instanceof BusError) return Effect.fail(target);
      const from = parseRangeBound(start, "start");
      const to = parseRangeBound(end, "end");
      if (from === undefined) return Effect.fail(badId(start));
      if (to === undefined) return Effect.fail(badId(end));
      if (target === undefined) return Effect.succeed(EMPTY);
      return Effect.succeed(target.slice(from, to, count ?? Number.MAX_SAFE_INTEGER).map((s) => unGrouped(s)));
    });

  readonly readAfter = (stream: string, afterId: string, count = DEFAULT_READ_COUNT, blockMs = 0): Effect.Effect<readonly Entry[], BusError> =>
    Effect.suspend(() => {
      const target = this.streamFor(stream, false);
      if (target instanceof BusError) return Effect.fail(target);
      const after = afterId === "$" ? (target?.lastId ?? { ms: 0, seq: 0 }) : parseStreamId(afterId);
      if (after === undefined) return Effect.fail(badId(afterId));
      const bound = { id: after, exclusive: true };
      return this.blocking(stream, blockMs, () => {
        const current = this.streamFor(stream, false);
        if (current instanceof BusError) return current;
        return current === undefined ? EMPTY : current.slice(bound, undefined, count).map((s) => unGrouped(s));
      });
    });

  readonly lastId = (stream: string): Effect.Effect<string, BusError> =>
    Effect.suspend(() => {
      const target = this.streamFor(stream, false);
      if (target instanceof BusError) return Effect.fail(target);
      return Effect.succeed(target?.newest()?.first.id ?? "0-0");
    });

  readonly streamInfo = (stream: string): Effect.Effect<StreamInfo, BusError> =>
    Effect.suspend(() => {
      const target = this.streamFor(stream, false);
      if (target instanceof BusError) return Effect.fail(target);
      // Positions survive trims: the end is how many entries were ever appended.
      return Effect.succeed(target === undefined ? { entriesAdded: 0, lastGeneratedId: "0-0" } : { entriesAdded: target.end, lastGeneratedId: formatStreamId(target.lastId) });
    });

  readonly hmget = (key: string, fields: readonly string[]): Effect.Effect<readonly (Uint8Array | null)[], BusError> =>
    withNow((now) => {
      if (this.streams.has(key)) return Effect.fail(wrongType(key));
      this.expireDue(key, now);
      const hash = this.hashes.get(key);
      return Effect.succeed(fields.map((field) => (hash === undefined ? null : bytesOf(hash, field))));
    });

  readonly hgetall = (key: string): Effect.Effect<Readonly<Record<string, Uint8Array>>, BusError> =>
    withNow((now) => {
      if (this.streams.has(key)) return Effect.fail(wrongType(key));
      this.expireDue(key, now);
      const hash = this.hashes.get(key);
      const all: Record<string, Uint8Array> = {};
      if (hash !== undefined) for (const field of hash.keys()) all[field] = bytesOf(hash, field)!;
      return Effect.succeed(all);
    });

  readonly length = (stream: string): Effect.Effect<number, BusError> =>
    Effect.suspend(() => {
      const target = this.streamFor(stream, false);
      return target instanceof BusError ? Effect.fail(target) : Effect.succeed(target?.length ?? 0);
    });

  readonly trimDelivered = (stream: string): Effect.Effect<number, BusError> =>
    Effect.suspend(() => {
      const target = this.streamFor(stream, false);
      if (target instanceof BusError) return Effect.fail(target);
      if (target === undefined || target.groups.size === 0) return Effect.succeed(0);
      // The first position some group still needs: its oldest pending entry, else its next undelivered one.
      let keep = Number.POSITIVE_INFINITY;
      for (const g of target.groups.values()) {
        let needed = g.cursor;
        for (const p of g.pel.values()) needed = Math.min(needed, p.stored.pos);
        keep = Math.min(keep, needed);
      }
      return Effect.succeed(target.dropBefore(keep));
    });

  readonly trim = (stream: string, maxLen: number): Effect.Effect<number, BusError> =>
    Effect.suspend(() => {
      const target = this.streamFor(stream, false);
      return target instanceof BusError ? Effect.fail(target) : Effect.succeed(target?.trimTo(maxLen) ?? 0);
    });

  readonly del = (keys: readonly string[]): Effect.Effect<void, BusError> =>
    Effect.sync(() => {
      for (const key of keys) {
        this.streams.delete(key);
        this.hashes.delete(key);
      }
    });

  private streamFor(key: string, create: true): Stream | BusError;
  private streamFor(key: string, create: false): Stream | BusError | undefined;
  private streamFor(key: string, create: boolean): Stream | BusError | undefined {
    const existing = this.streams.get(key);
    if (existing !== undefined) return existing;
    if (this.hashes.has(key)) return wrongType(key);
    if (!create) return undefined;
    const created = new MemoryStream<Group>(key);
    this.streams.set(key, created);
    return created;
  }

  private groupOf(stream: string, group: string): { target: Stream; group: Group } | BusError {
    const target = this.streamFor(stream, false);
    if (target instanceof BusError) return target;
    const g = target?.groups.get(group);
    return target === undefined || g === undefined ? noGroup(stream, group) : { target, group: g };
  }

  private append(target: Stream, fields: EntryFields, maxLen: number | null | undefined, now: number): Stored {
    const stored = target.append(fields, now);
    if (maxLen !== null) target.trimTo(maxLen ?? this.maxLen);
    const blocked = this.waiters.get(target.key);
    if (blocked !== undefined && blocked.size > 0) this.wakeSoon(target.key);
    return stored;
  }

  /**
   * Wakes a stream's blocked readers once the current synchronous work is done, not inside the
   * append: a reader woken in the middle of a commit would see half of it (Redis runs a commit as
   * one script), and a reader woken per append read a 500-entry commit one entry at a time.
   */
  private wakeSoon(key: string): void {
    if (this.toWake.size === 0) queueMicrotask(() => this.wakeAll());
    this.toWake.add(key);
  }

  private wakeAll(): void {
    const keys = [...this.toWake];
    this.toWake.clear();
    for (const key of keys) {
      const blocked = this.waiters.get(key);
      if (blocked === undefined || blocked.size === 0) continue;
      const wake = [...blocked];
      blocked.clear();
      for (const w of wake) w();
    }
  }

  private ackIds(target: Stream, group: string, ids: readonly string[]): number {
    const pel = target.groups.get(group)?.pel;
    if (pel === undefined) return 0;
    let acked = 0;
    for (const id of ids) if (pel.delete(id)) acked++;
    return acked;
  }

  /** One XREADGROUP: this consumer's pending entries first (after a restart), then new ones. */
  private readGroup(state: ReaderState, now: number): readonly Entry[] | BusError {
    if (state.closed) return new BusError({ reason: "closed", message: `reader ${state.consumer} on ${state.stream} is closed` });
    if (state.fence !== undefined) {
      // As on Redis: the lease is looked at in the same step as the delivery.
      this.expireDue(state.fence.key, now);
      const hash = this.hashes.get(state.fence.key);
      const bytes = hash === undefined ? null : bytesOf(hash, LEASE_OWNER_FIELD);
      const owner = bytes === null ? "" : Buffer.from(bytes).toString("utf8");
      if (owner !== state.fence.owner) {
        return new BusError({ reason: "conflict", key: state.fence.key, message: `${state.consumer} reads ${state.stream} no more: the lease ${state.fence.key} is held by ${owner || "nobody"} now` });
      }
    }
    let target = this.streamFor(state.stream, false);
    if (target instanceof BusError) return target;
    let g = target?.groups.get(state.group);
    if (target === undefined || g === undefined) {
      // The stream or group was deleted under the reader: as on Redis, the read fails with NOGROUP.
      return noGroup(state.stream, state.group);
    }
    if (state.draining) {
      const held = this.drain(state, target, g, now);
      if (held.length > 0) return held;
      state.draining = false;
    }
    const from = Math.max(g.cursor, target.start);
    const to = target.end;
    if (from >= to) {
      g.cursor = from;
      return EMPTY;
    }
    const out: Entry[] = [];
    const budget = new Budget(state);
    let pos = from;
    for (; pos < to && out.length < state.count && budget.left(); pos++) {
      const stored = target.at(pos)!;
      if (stored.deleted) continue;
      g.pel.set(stored.first.id, { stored, consumer: state.consumer, deliveries: 1, deliveredAt: now });
      g.lastDelivered = stored.first.id;
      const entry = state.maxEntryBytes === Number.POSITIVE_INFINITY ? stored.first : delivered(state.stream, stored.first.id, stored.first.fields, 1, state.maxEntryBytes);
      budget.spend(entry);
      out.push(entry);
    }
    g.cursor = pos;
    return out;
  }

  private drain(state: ReaderState, target: Stream, g: Group, now: number): readonly Entry[] {
    const out: Entry[] = [];
    const budget = new Budget(state);
    for (const [id, p] of g.pel) {
      if (out.length >= state.count || !budget.left()) break;
      if (p.consumer !== state.consumer || p.stored.pos <= state.drainAfter) continue;
      if (target.isGone(p.stored)) {
        // Its data was trimmed: nothing left to process (Redis returns it with nil fields).
        g.pel.delete(id);
        continue;
      }
      p.deliveries += 1;
      p.deliveredAt = now;
      state.drainAfter = p.stored.pos;
      const entry = delivered(state.stream, id, p.stored.first.fields, p.deliveries, state.maxEntryBytes);
      budget.spend(entry);
      out.push(entry);
    }
    return out;
  }

  /**
   * Runs `attempt`; when it finds nothing, parks until an append to `key` (then tries again) or
   * until `blockMs` have passed on the Clock. No polling: an append calls the parked waiters directly.
   */
  private blocking(key: string, blockMs: number, attempt: (now: number) => readonly Entry[] | BusError): Effect.Effect<readonly Entry[], BusError> {
    const once = (clock: Clock.Clock, deadline: number): Effect.Effect<readonly Entry[], BusError> =>
      Effect.suspend(() => {
        const now = clock.currentTimeMillisUnsafe();
        const got = attempt(now);
        if (got instanceof BusError) return Effect.fail(got);
        if (got.length > 0) return Effect.succeed(got);
        const remaining = deadline - now;
        if (remaining <= 0) return Effect.succeed(EMPTY);
        const woken = Effect.callback<void>((resume) => {
          const wake = () => resume(Effect.void);
          let set = this.waiters.get(key);
          if (set === undefined) this.waiters.set(key, (set = new Set()));
          set.add(wake);
          return Effect.sync(() => void this.waiters.get(key)?.delete(wake));
        });
        return woken.pipe(
          Effect.timeoutOption(remaining),
          Effect.flatMap((wake) => (wake._tag === "Some" ? once(clock, deadline) : Effect.succeed(EMPTY))),
        );
      });
    return Effect.clockWith((clock) => once(clock, clock.currentTimeMillisUnsafe() + blockMs));
  }

  /** All-or-nothing: every op is checked against the key types it would meet before any applies. */
  private validate(ops: readonly CommitOp[]): BusError | undefined {
    const shape = commitShapeError(ops);
    if (shape !== undefined) return shape;
    const planned = new Map<string, "stream" | "hash">();
    const kindOf = (key: string) => planned.get(key) ?? (this.streams.has(key) ? "stream" : this.hashes.has(key) ? "hash" : undefined);
    const check = (key: string, want: "stream" | "hash", writes: boolean): BusError | undefined => {
      const current = kindOf(key);
      if (current !== undefined && current !== want) return wrongType(key);
      if (writes) planned.set(key, want);
      return undefined;
    };
    for (const op of ops) {
      const problem =
        op.op === "rotate"
          ? (check(op.key, "hash", false) ?? check(op.to, "hash", false))
          : op.op === "hset"
            ? check(op.key, "hash", true)
            : op.op === "absent" || op.op === "expect"
              ? check(op.key, "hash", false)
              : op.op === "deadletter"
                ? (check(op.stream, "stream", false) ?? check(op.dlq, "stream", true))
                : check(op.stream, "stream", op.op === "xadd");
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
}

/** A hash value as bytes; a deferred one is encoded now, once, and kept encoded. */
const bytesOf = (hash: Map<string, Uint8Array | DeferredBytes>, field: string): Uint8Array | null => {
  const value = hash.get(field);
  if (value === undefined) return null;
  if (value instanceof Uint8Array) return value;
  const bytes = value.encode();
  hash.set(field, bytes);
  return bytes;
};

/** What one read may still hand over (ReaderOptions.maxBatchBytes): entries counted whole, stubs not. */
class Budget {
  private spent = 0;
  constructor(private readonly state: { readonly maxBatchBytes: number }) {}
  left(): boolean {
    return this.spent <= this.state.maxBatchBytes;
  }
  spend(entry: Entry): void {
    if (this.state.maxBatchBytes !== Number.POSITIVE_INFINITY && entry.oversize === undefined) this.spent += entryBytes(entry.fields);
  }
}

/** A group delivery of an entry, as an oversize stub when its fields pass `maxEntryBytes`. */
const delivered = (stream: string, id: string, fields: EntryFields, deliveries: number, maxEntryBytes: number): Entry => {
  if (maxEntryBytes !== Number.POSITIVE_INFINITY) {
    const bytes = entryBytes(fields);
    if (bytes > maxEntryBytes) return { stream, id, deliveries, ...oversizeStub(fields, bytes) };
  }
  return { stream, id, fields, deliveries };
};

const unGrouped = (stored: Stored): Entry => ({ stream: stored.first.stream, id: stored.first.id, fields: stored.first.fields, deliveries: 0 });
