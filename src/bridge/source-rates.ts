/**
 * How many commands each `source` may send a layer per second: a fixed one-second window of
 * counters, all dropped when the window turns. Written here rather than taken from
 * effect/persistence's RateLimiter, whose memory store keeps a counter for every key it ever saw
 * (a hostile writer inventing sources grew the worker without bound) and costs a fiber per call;
 * this one is synchronous, so the bridge's admission step stays a plain function.
 *
 * Memory is bounded twice: counters live one window at most, and a window holds at most
 * `maxSources` of them; sources beyond that share one overflow counter, so a flood of new names
 * is limited as one source.
 */
export interface SourceRatesOptions {
  /** Commands per source per second; 0 = no limit. */
  readonly perSecond: number;
  /** Most sources counted apart in one window. Default 10,000. */
  readonly maxSources?: number;
}

const OVERFLOW = "\u0000overflow";

export class SourceRates {
  private window = Number.NEGATIVE_INFINITY;
  private readonly counts = new Map<string, number>();
  private readonly maxSources: number;

  constructor(private readonly options: SourceRatesOptions) {
    this.maxSources = options.maxSources ?? 10_000;
  }

  /** Sources counted in the current window (for tests and stats). */
  get size(): number {
    return this.counts.size;
  }

  /**
   * Takes `wanted` commands of `source` at time `now` (ms) and returns how many fit: the first
   * that many are admitted, the rest are over the limit.
   */
  take(source: string, wanted: number, now: number): number {
    const limit = this.options.perSecond;
    if (limit <= 0) return wanted;
    const window = Math.floor(now / 1000);
    if (window !== this.window) {
      this.window = window;
      this.counts.clear();
    }
    const key = this.counts.has(source) || this.counts.size < this.maxSources ? source : OVERFLOW;
    const used = this.counts.get(key) ?? 0;
    const granted = Math.max(0, Math.min(wanted, limit - used));
    this.counts.set(key, used + wanted);
    return granted;
  }
}
