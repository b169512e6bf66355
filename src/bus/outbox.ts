import { BusError, type EntryFields } from "./bus.ts";

/**
 * What RedisBus holds while Redis is unreachable. Commands and events (durable entries) wait
 * here, bounded, and are written in order when Redis returns; a publish beyond the bound is
 * refused with `outbox_full`, never dropped. Entries of droppable (telemetry) streams have their
 * own bound and push out the oldest of their kind, counted in `dropped`.
 *
 * Order is kept per stream because a stream is either durable or droppable, each queue is FIFO,
 * and a batch that could not be written goes back to the front of its queue.
 */
export interface OutboxEntry {
  readonly stream: string;
  readonly fields: EntryFields;
  readonly maxLen: number | null;
  /** The publish waiting for this entry, and its place in that publish. Absent for droppable entries. */
  readonly ticket: Ticket | undefined;
  readonly index: number;
}

export type Settled = string | BusError | undefined;

/** One waiting publish (or publishMany): resolves when all of its durable entries are written. */
export class Ticket {
  private remaining = 0;
  private done = false;
  constructor(
    readonly ids: string[],
    private readonly resolve: (outcome: readonly string[] | BusError) => void,
  ) {}

  expect(): void {
    this.remaining++;
  }

  written(index: number, id: string): void {
    this.ids[index] = id;
    if (--this.remaining === 0) this.finish(this.ids);
  }

  finish(outcome: readonly string[] | BusError): void {
    if (this.done) return;
    this.done = true;
    this.resolve(outcome);
  }
}

/** A FIFO over an array with a moving head, so shifting is O(1) amortized. */
class Queue<A> {
  private items: A[] = [];
  private head = 0;
  get size(): number {
    return this.items.length - this.head;
  }
  push(item: A): void {
    this.items.push(item);
  }
  shift(): A | undefined {
    if (this.head === this.items.length) return undefined;
    const item = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
  unshiftAll(items: readonly A[]): void {
    this.items.splice(this.head, 0, ...items);
  }
  drain(): A[] {
    const all = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return all;
  }
}

export interface Offer {
  readonly stream: string;
  readonly fields: EntryFields;
  readonly maxLen: number | null;
  readonly droppable: boolean;
  /** Its place in the publish's ids, when only part of a publishMany waits here. Default: its place in `offers`. */
  readonly index?: number;
}

export class Outbox {
  private readonly durable = new Queue<OutboxEntry>();
  private readonly droppable = new Queue<OutboxEntry>();
  /** Durable entries taken for a write whose outcome is not known yet: they still count against the bound. */
  private inFlight = 0;
  /** All entries taken and not settled: while any are out, a new publish must queue behind them. */
  private taken = 0;
  private wakers = new Set<() => void>();
  dropped = 0;

  constructor(
    readonly limit: number,
    readonly droppableLimit: number,
  ) {}

  get durableSize(): number {
    return this.durable.size + this.inFlight;
  }

  get droppableSize(): number {
    return this.droppable.size;
  }

  get isEmpty(): boolean {
    return this.durable.size === 0 && this.droppable.size === 0 && this.taken === 0;
  }

  /**
   * Accepts every durable entry of `offers` or none (`outbox_full`): a publishMany is never half
   * queued. Returns undefined when nothing durable needs waiting for.
   */
  offer(offers: readonly Offer[], ids: string[], resolve: (outcome: readonly string[] | BusError) => void): Ticket | BusError | undefined {
    let durable = 0;
    for (const o of offers) if (!o.droppable) durable++;
    if (durable > 0 && this.durableSize + durable > this.limit) {
      return new BusError({
        reason: "outbox_full",
        message: `Redis is unreachable and the outbox holds ${this.durableSize} of ${this.limit} commands and events`,
      });
    }
    const ticket = durable > 0 ? new Ticket(ids, resolve) : undefined;
    offers.forEach((o, i) => {
      const index = o.index ?? i;
      if (o.droppable) {
        this.droppable.push({ stream: o.stream, fields: o.fields, maxLen: o.maxLen, ticket: undefined, index });
        if (this.droppable.size > this.droppableLimit) {
          this.droppable.shift();
          this.dropped++;
        }
      } else {
        ticket!.expect();
        this.durable.push({ stream: o.stream, fields: o.fields, maxLen: o.maxLen, ticket, index });
      }
    });
    this.wake();
    return ticket;
  }

  /** Takes up to `max` entries to write, durable first. Hand them back with `settle`. */
  take(max: number): OutboxEntry[] {
    const batch: OutboxEntry[] = [];
    while (batch.length < max && this.durable.size > 0) batch.push(this.durable.shift()!);
    this.inFlight += batch.length;
    while (batch.length < max && this.droppable.size > 0) batch.push(this.droppable.shift()!);
    this.taken += batch.length;
    return batch;
  }

  /** Per entry: its id (written), a BusError (refused by Redis, reported to its publisher), or undefined (try again later). */
  settle(batch: readonly OutboxEntry[], outcomes: readonly Settled[]): void {
    const retry: OutboxEntry[] = [];
    const retryDroppable: OutboxEntry[] = [];
    this.taken -= batch.length;
    batch.forEach((entry, i) => {
      if (entry.ticket !== undefined) this.inFlight--;
      const outcome = outcomes[i];
      if (outcome === undefined) (entry.ticket === undefined ? retryDroppable : retry).push(entry);
      else if (typeof outcome === "string") entry.ticket?.written(entry.index, outcome);
      else entry.ticket?.finish(outcome);
    });
    if (retry.length > 0) this.durable.unshiftAll(retry);
    if (retryDroppable.length > 0) this.droppable.unshiftAll(retryDroppable);
  }

  /** Resolves the next time an entry is offered (at once if some already wait). */
  onWork(wake: () => void): () => void {
    if (this.durable.size > 0 || this.droppable.size > 0) {
      wake();
      return () => {};
    }
    this.wakers.add(wake);
    return () => this.wakers.delete(wake);
  }

  /** At shutdown: every waiting publisher learns its entry was not written. */
  close(error: BusError): number {
    const left = this.durable.drain();
    this.droppable.drain();
    for (const entry of left) entry.ticket?.finish(error);
    return left.length;
  }

  private wake(): void {
    if (this.wakers.size === 0) return;
    const wakers = [...this.wakers];
    this.wakers.clear();
    for (const w of wakers) w();
  }
}
