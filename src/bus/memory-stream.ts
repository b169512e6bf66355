import type { Entry, EntryFields } from "./bus.ts";
import { compareStreamIds, type StreamId } from "./stream-id.ts";

/** One appended entry. `first` is how every group's first delivery shows it, so a read allocates nothing. */
export interface Stored {
  /** Absolute position since the stream was created; survives trimming, unlike an array index. */
  readonly pos: number;
  readonly ms: number;
  readonly seq: number;
  readonly first: Entry;
  /** XDEL leaves a tombstone: positions stay valid and pending entries can tell it is gone. */
  deleted: boolean;
}

/**
 * The entries of one MemoryBus stream, oldest first, in an array whose trimmed prefix is
 * skipped by an index (compacted now and then), so appends and trims are O(1) amortized and a
 * lookup by id is a binary search.
 */
export class MemoryStream<Group> {
  /** Consumer groups live with their stream: deleting the stream deletes them, as in Redis. */
  readonly groups = new Map<string, Group>();
  /** The last id ever generated; XADD ids keep increasing even after deletes, as in Redis. */
  lastId: StreamId = { ms: 0, seq: 0 };
  private entries: Stored[] = [];
  /** Absolute position of entries[0]. */
  private offset = 0;
  /** entries[0 .. head) are trimmed. */
  private head = 0;
  private tombstones = 0;

  constructor(readonly key: string) {}

  /** First live position. */
  get start(): number {
    return this.offset + this.head;
  }

  /** One past the last position. */
  get end(): number {
    return this.offset + this.entries.length;
  }

  get length(): number {
    return this.entries.length - this.head - this.tombstones;
  }

  at(pos: number): Stored | undefined {
    return pos >= this.start && pos < this.end ? this.entries[pos - this.offset] : undefined;
  }

  /** The newest live entry. */
  newest(): Stored | undefined {
    for (let i = this.entries.length - 1; i >= this.head; i--) if (!this.entries[i]!.deleted) return this.entries[i];
    return undefined;
  }

  isGone(stored: Stored): boolean {
    return stored.deleted || stored.pos < this.start;
  }

  append(fields: EntryFields, now: number): Stored {
    const last = this.lastId;
    const id = now > last.ms ? { ms: now, seq: 0 } : { ms: last.ms, seq: last.seq + 1 };
    this.lastId = id;
    const stored: Stored = {
      pos: this.end,
      ms: id.ms,
      seq: id.seq,
      first: { stream: this.key, id: `${id.ms}-${id.seq}`, fields, deliveries: 1 },
      deleted: false,
    };
    this.entries.push(stored);
    return stored;
  }

  /** Drops the live entries before absolute position `pos`; returns how many it dropped. */
  dropBefore(pos: number): number {
    let removed = 0;
    while (this.start < pos && this.head < this.entries.length) {
      const oldest = this.entries[this.head++]!;
      if (oldest.deleted) this.tombstones--;
      else removed++;
    }
    return removed;
  }

  /** Drops the oldest entries until at most `maxLen` remain; returns how many it dropped. */
  trimTo(maxLen: number): number {
    let removed = 0;
    while (this.length > maxLen) {
      const oldest = this.entries[this.head++]!;
      if (oldest.deleted) this.tombstones--;
      else removed++;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.offset += this.head;
      this.head = 0;
    }
    return removed;
  }

  remove(ids: readonly StreamId[]): number {
    let removed = 0;
    for (const id of ids) {
      const i = this.lowerBound(id, false);
      const stored = this.entries[i];
      if (stored === undefined || stored.deleted || compareStreamIds(stored, id) !== 0) continue;
      stored.deleted = true;
      this.tombstones++;
      removed++;
    }
    return removed;
  }

  /** Live entries from `from` up to `to` (inclusive unless exclusive; open-ended without `to`), at most `count`. */
  slice(
    from: { readonly id: StreamId; readonly exclusive: boolean },
    to: { readonly id: StreamId; readonly exclusive: boolean } | undefined,
    count: number,
  ): Stored[] {
    const out: Stored[] = [];
    for (let i = this.lowerBound(from.id, from.exclusive); i < this.entries.length && out.length < count; i++) {
      const stored = this.entries[i]!;
      if (to !== undefined) {
        const c = compareStreamIds(stored, to.id);
        if (c > 0 || (c === 0 && to.exclusive)) break;
      }
      if (!stored.deleted) out.push(stored);
    }
    return out;
  }

  /** Index of the first live entry with id >= `id` (> when exclusive). */
  private lowerBound(id: StreamId, exclusive: boolean): number {
    let lo = this.head;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = compareStreamIds(this.entries[mid]!, id);
      if (c < 0 || (c === 0 && exclusive)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
