import { Effect, Layer, type Scope } from "effect";
import {
  BusError,
  BusService,
  DEFAULT_BLOCK_MS,
  DEFAULT_MAXLEN,
  DEFAULT_PENDING_COUNT,
  DEFAULT_READ_COUNT,
  type Bus,
  type CommitOp,
  type DeadLetter,
  type DeferredBytes,
  type HashValue,
  type Entry,
  type EntryFields,
  type PendingEntry,
  type Reader,
  type ReaderOptions,
} from "./bus.ts";
import { deadLetterOps } from "./dead-letters.ts";
import { MemoryStream, type Stored } from "./memory-stream.ts";
import { commitShapeError, conflictError } from "./commit.ts";
import { isStreamId, parseRangeBound, parseStreamId } from "./stream-id.ts";

export interface MemoryBusOptions {
  /**
   * Milliseconds since the epoch. Entry ids, idle times and `failed_at` come from it, so tests
   * can pass a clock they move by hand. Blocking reads wait in real time. Default `Date.now`.
   */
  readonly now?: () => number;
  /** MAXLEN when a publish or an xadd names none. Default DEFAULT_MAXLEN. */
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
  /** Reading back what this consumer already holds, as XREADGROUP with id 0 does after a restart. */
  draining: boolean;
  drainAfter: number;
  closed: boolean;
}

const EMPTY: readonly Entry[] = [];
const encoder = new TextEncoder();

const failure = (message: string) => new BusError({ reason: "command_failed", message });
const wrongType = (key: string) =>
  failure(`WRONGTYPE Operation against a key holding the wrong kind of value (${key})`);
const noGroup = (stream: string, group: string) => failure(`NOGROUP No such key '${stream}' or consumer group '${group}'`);
const badId = (id: string) => failure(`ERR Invalid stream ID specified as stream command argument: ${id}`);

/**
 * The embedded bus: Redis Streams semantics (ids, consumer groups, pending entries lists,
 * claims, dead letters, atomic commits) in one process, without Redis.
 *
 * Entries are stored by reference and never copied: a publisher must not mutate the fields it
 * published. `MAXLEN ~` trims exactly (cheap here: trimming moves an index).
 */
export class MemoryBus implements Bus {
  static layer(options: MemoryBusOptions = {}): Layer.Layer<BusService> {
    return Layer.sync(BusService, () => new MemoryBus(options));
  }

  readonly inProcess = true;
  private readonly now: () => number;
  private readonly maxLen: number;
  private readonly streams = new Map<string, Stream>();
  /** Values stay as committed (a DeferredBytes is encoded on its first read, see `bytesOf`). */
  private readonly hashes = new Map<string, Map<string, Uint8Array | DeferredBytes>>();
  /** Blocked readers by stream key; a key may have waiters before it exists. */
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(options: MemoryBusOptions = {}) {
    this.now = options.now ?? Date.now;
    this.maxLen = options.maxLen ?? DEFAULT_MAXLEN;
  }

  readonly publish = (stream: string, fields: EntryFields, maxLen?: number | null): Effect.Effect<string, BusError> =>
    Effect.suspend(() => {
      const target = this.streamFor(stream, true);
      return target instanceof BusError ? Effect.fail(target) : Effect.succeed(this.append(target, fields, maxLen).first.id);
    });

  readonly publishMany = (
    entries: ReadonlyArray<{ readonly stream: string; readonly fields: EntryFields }>,
    maxLen?: number | null,
  ): Effect.Effect<readonly string[], BusError> =>
    Effect.suspend(() => {
      for (const { stream } of entries) if (this.hashes.has(stream)) return Effect.fail(wrongType(stream));
      return Effect.succeed(entries.map(({ stream, fields }) => this.append(this.streamFor(stream, true) as Stream, fields, maxLen).first.id));
    });

  readonly ensureGroup = (stream: string, group: string, startId: "0" | "$" = "$"): Effect.Effect<void, BusError> =>
    Effect.suspend(() => {
      const target = this.streamFor(stream, true);
      if (target instanceof BusError) return Effect.fail(target);
      if (!target.groups.has(group)) target.groups.set(group, { cursor: startId === "0" ? 0 : target.end, pel: new Map() });
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
            draining: true,
            drainAfter: -1,
            closed: false,
          };
          return { state, reader: { read: this.blocking(state.stream, state.blockMs, () => this.readGroup(state)) } };
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
    Effect.suspend(() => {
      const found = this.groupOf(stream, group);
      if (found instanceof BusError) return Effect.fail(found);
      const now = this.now();
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
  ): Effect.Effect<readonly Entry[], BusError> =>
    Effect.suspend(() => {
      const found = this.groupOf(stream, group);
      if (found instanceof BusError) return Effect.fail(found);
      const { target, group: g } = found;
      const now = this.now();
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
        out.push({ stream, id, fields: p.stored.first.fields, deliveries: p.deliveries });
      }
      return Effect.succeed(out);
    });

  readonly deadLetter = (letter: DeadLetter): Effect.Effect<string, BusError> =>
    Effect.map(this.commit(deadLetterOps(letter, this.now())), (ids) => ids[0]!);

  readonly commit = (ops: readonly CommitOp[]): Effect.Effect<readonly string[], BusError> =>
    Effect.suspend(() => {
      const invalid = this.validate(ops);
      if (invalid !== undefined) return Effect.fail(invalid);
      for (const op of ops) {
        if (op.op !== "absent") continue;
        const hash = this.hashes.get(op.key);
        const present = hash === undefined ? [] : op.fields.filter((field) => hash.has(field));
        if (present.length > 0) return Effect.fail(conflictError(op.key, present));
      }
      const ids: string[] = [];
      for (const op of ops) {
        switch (op.op) {
          case "absent":
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
            ids.push(this.append(this.streamFor(op.stream, true) as Stream, op.fields, op.maxLen).first.id);
            break;
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

  readonly hmget = (key: string, fields: readonly string[]): Effect.Effect<readonly (Uint8Array | null)[], BusError> =>
    Effect.suspend(() => {
      if (this.streams.has(key)) return Effect.fail(wrongType(key));
      const hash = this.hashes.get(key);
      return Effect.succeed(fields.map((field) => (hash === undefined ? null : bytesOf(hash, field))));
    });

  readonly hgetall = (key: string): Effect.Effect<Readonly<Record<string, Uint8Array>>, BusError> =>
    Effect.suspend(() => {
      if (this.streams.has(key)) return Effect.fail(wrongType(key));
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

  private append(target: Stream, fields: EntryFields, maxLen: number | null | undefined): Stored {
    const stored = target.append(fields, this.now());
    if (maxLen !== null) target.trimTo(maxLen ?? this.maxLen);
    const blocked = this.waiters.get(target.key);
    if (blocked !== undefined && blocked.size > 0) this.wakeSoon(target.key);
    return stored;
  }

  /** Streams appended to whose blocked readers have not been woken yet. */
  private readonly toWake = new Set<string>();

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
  private readGroup(state: ReaderState): readonly Entry[] | BusError {
    if (state.closed) return new BusError({ reason: "closed", message: `reader ${state.consumer} on ${state.stream} is closed` });
    let target = this.streamFor(state.stream, false);
    if (target instanceof BusError) return target;
    let g = target?.groups.get(state.group);
    if (target === undefined || g === undefined) {
      // The stream or group was deleted under the reader; recreate it as a restarted Redis would need.
      target = this.streamFor(state.stream, true) as Stream;
      g = { cursor: 0, pel: new Map() };
      target.groups.set(state.group, g);
    }
    const now = this.now();
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
    let pos = from;
    for (; pos < to && out.length < state.count; pos++) {
      const stored = target.at(pos)!;
      if (stored.deleted) continue;
      g.pel.set(stored.first.id, { stored, consumer: state.consumer, deliveries: 1, deliveredAt: now });
      out.push(stored.first);
    }
    g.cursor = pos;
    return out;
  }

  private drain(state: ReaderState, target: Stream, g: Group, now: number): readonly Entry[] {
    const out: Entry[] = [];
    for (const [id, p] of g.pel) {
      if (out.length >= state.count) break;
      if (p.consumer !== state.consumer || p.stored.pos <= state.drainAfter) continue;
      if (target.isGone(p.stored)) {
        // Its data was trimmed: nothing left to process (Redis returns it with nil fields).
        g.pel.delete(id);
        continue;
      }
      p.deliveries += 1;
      p.deliveredAt = now;
      state.drainAfter = p.stored.pos;
      out.push({ stream: state.stream, id, fields: p.stored.first.fields, deliveries: p.deliveries });
    }
    return out;
  }

  /**
   * Runs `attempt`; when it finds nothing, parks until an append to `key` (then tries again) or
   * until `blockMs` have passed. No polling: an append calls the parked waiters directly.
   */
  private blocking(
    key: string,
    blockMs: number,
    attempt: () => readonly Entry[] | BusError,
  ): Effect.Effect<readonly Entry[], BusError> {
    const once = (deadline: number): Effect.Effect<readonly Entry[], BusError> =>
      Effect.suspend(() => {
        const got = attempt();
        if (got instanceof BusError) return Effect.fail(got);
        if (got.length > 0) return Effect.succeed(got);
        const remaining = deadline - performance.now();
        if (remaining <= 0) return Effect.succeed(EMPTY);
        return Effect.callback<readonly Entry[], BusError>((resume) => {
          const wake = () => {
            clearTimeout(timer);
            resume(once(deadline));
          };
          const timer = setTimeout(() => {
            this.waiters.get(key)?.delete(wake);
            resume(Effect.succeed(EMPTY));
          }, remaining);
          let set = this.waiters.get(key);
          if (set === undefined) this.waiters.set(key, (set = new Set()));
          set.add(wake);
          return Effect.sync(() => {
            clearTimeout(timer);
            this.waiters.get(key)?.delete(wake);
          });
        });
      });
    return Effect.suspend(() => once(performance.now() + blockMs));
  }

  /** All-or-nothing: every op is checked against the key types it would meet before any applies. */
  private validate(ops: readonly CommitOp[]): BusError | undefined {
    const shape = commitShapeError(ops);
    if (shape !== undefined) return shape;
    const planned = new Map<string, "stream" | "hash">();
    for (const op of ops) {
      if (op.op === "rotate" && this.streams.has(op.to)) return wrongType(op.to);
      const key = op.op === "hset" || op.op === "absent" || op.op === "rotate" ? op.key : op.stream;
      const want = op.op === "hset" || op.op === "absent" || op.op === "rotate" ? "hash" : "stream";
      const current = planned.get(key) ?? (this.streams.has(key) ? "stream" : this.hashes.has(key) ? "hash" : undefined);
      if (current !== undefined && current !== want) return wrongType(key);
      if (op.op === "xadd" || op.op === "hset") planned.set(key, want);
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

const unGrouped = (stored: Stored): Entry => ({ stream: stored.first.stream, id: stored.first.id, fields: stored.first.fields, deliveries: 0 });
