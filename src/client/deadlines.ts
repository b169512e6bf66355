import { Effect, Fiber } from "effect";
import type { Runner } from "./runner.ts";

/**
 * Deadlines of many waiters behind ONE timer: a binary min-heap by deadline, and a single sleep
 * (on Effect's Clock, run with the client's services, so a TestClock drives it) for the earliest. Ten thousand pending commands
 * cost one timer, not ten thousand; the timer moves only when the earliest deadline does.
 */
export interface Deadlined {
  readonly deadline: number;
  /** Position in the heap; -1 once out of it. The queue keeps it. */
  index: number;
}

export class DeadlineQueue<W extends Deadlined> {
  private readonly heap: W[] = [];
  private timer: Fiber.Fiber<void> | undefined;
  private timerAt = Number.POSITIVE_INFINITY;

  /** `expire` is called with every waiter whose deadline has passed, earliest first. */
  constructor(
    private readonly run: Runner,
    /** The current time (ms), from the same Clock the timer sleeps on. */
    readonly now: () => number,
    private readonly expire: (w: W) => void,
  ) {}

  get size(): number {
    return this.heap.length;
  }

  add(w: W): void {
    w.index = this.heap.length;
    this.heap.push(w);
    this.siftUp(w.index);
    this.arm();
  }

  remove(w: W): void {
    const i = w.index;
    if (i < 0) return;
    w.index = -1;
    const last = this.heap.pop()!;
    if (last !== w) {
      this.heap[i] = last;
      last.index = i;
      this.siftDown(i);
      this.siftUp(last.index);
    }
    // A timer left armed for a deadline that went fires, finds nothing due, and re-arms.
    if (this.heap.length === 0) this.disarm();
  }

  /** Every waiter, earliest first, taken out of the queue. */
  drain(): W[] {
    const all = [...this.heap].sort((a, b) => a.deadline - b.deadline);
    for (const w of all) w.index = -1;
    this.heap.length = 0;
    this.disarm();
    return all;
  }

  private arm(): void {
    const top = this.heap[0];
    if (top === undefined) return this.disarm();
    if (this.timer !== undefined && this.timerAt <= top.deadline) return;
    this.disarm();
    this.timerAt = top.deadline;
    const wait = Math.max(0, top.deadline - this.now());
    this.timer = this.run.fork(Effect.andThen(Effect.sleep(wait), Effect.sync(() => this.fire())));
  }

  private disarm(): void {
    if (this.timer !== undefined) this.run.fork(Fiber.interrupt(this.timer));
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  private fire(): void {
    // The timer fired, so its deadline has passed even where the clock reads a hair earlier.
    const now = Math.max(this.now(), this.timerAt);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    while (this.heap.length > 0 && this.heap[0]!.deadline <= now) {
      const w = this.heap[0]!;
      this.remove(w);
      this.expire(w);
    }
    this.arm();
  }

  private swap(i: number, j: number): void {
    const a = this.heap[i]!;
    const b = this.heap[j]!;
    this.heap[i] = b;
    this.heap[j] = a;
    b.index = i;
    a.index = j;
  }

  private siftUp(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.heap[parent]!.deadline <= this.heap[i]!.deadline) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private siftDown(i: number): void {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let least = i;
      if (l < this.heap.length && this.heap[l]!.deadline < this.heap[least]!.deadline) least = l;
      if (r < this.heap.length && this.heap[r]!.deadline < this.heap[least]!.deadline) least = r;
      if (least === i) return;
      this.swap(i, least);
      i = least;
    }
  }
}
