/**
 * Tamiyo's view of a layer over time: frames folded into fixed windows of `windowMs`, one
 * summary per layer and window (count, mean, min, max, p95 of every metric over every seed
 * record), and the latest value of every seed's metrics, because a policy judges seeds one by one.
 *
 * Windows are cut on the aggregator's clock, by when a frame arrives, not by the frame's
 * timestamp: that is another machine's clock, and a window must close on ours. They are aligned
 * to multiples of `windowMs` since the epoch, so every layer's windows line up. A backlog read
 * after an outage therefore lands in the window it is read in.
 */
import { Clock, Effect } from "effect";
import type { SeedMetricsSnapshot } from "../protocol/messages.ts";
import type { TelemetryContent } from "./decode.ts";
import type { TelemetryFrame } from "./frame.ts";

export interface MetricSummary {
  /** Cells that held a number (NaN cells are "does not apply" and are left out). */
  readonly count: number;
  readonly mean: number;
  readonly min: number;
  readonly max: number;
  /** Nearest-rank 95th percentile: exact up to `maxSamples` values, of a uniform sample beyond. */
  readonly p95: number;
}

export interface LayerWindowSummary {
  readonly layerId: string;
  /** ms on the aggregator's clock; the window is [windowStart, windowEnd). */
  readonly windowStart: number;
  readonly windowEnd: number;
  /** Frames added in the window (a frame without seeds, an epoch tick, counts too). */
  readonly frames: number;
  /** Distinct seeds with at least one record in the window. */
  readonly seedsSeen: number;
  readonly metrics: Readonly<Record<string, MetricSummary>>;
}

export interface TelemetryAggregatorOptions {
  /** Length of a window in ms. @defaultValue 1000 */
  readonly windowMs?: number;
  /**
   * Now, in ms. @defaultValue Effect's default Clock; `makeTelemetryAggregator` passes the Clock
   * of the Effect that makes it, so a TestClock drives it.
   */
  readonly now?: () => number;
  /**
   * Values kept per metric per window for the p95. Past it the kept values are a uniform sample
   * of all (reservoir sampling), so a window costs at most `maxSamples` numbers a metric however
   * many seeds report; count, mean, min and max stay exact. @defaultValue 10000
   */
  readonly maxSamples?: number;
  /**
   * Called once with each window as it closes. Windows given to it are not kept for `flush`;
   * without it, closed windows wait for `flush`, so a caller without one must flush.
   */
  readonly onWindow?: (summary: LayerWindowSummary) => void;
  /** Uniform in [0, 1), for the reservoir. @defaultValue Math.random */
  readonly random?: () => number;
}

export const AGGREGATOR_DEFAULTS = { windowMs: 1_000, maxSamples: 10_000 } as const;

/** One metric of one open window. */
class MetricWindow {
  count = 0;
  sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  readonly samples: number[] = [];

  add(v: number, maxSamples: number, random: () => number): void {
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    if (this.samples.length < maxSamples) this.samples.push(v);
    else {
      // Algorithm R: the count-th value replaces a kept one with probability maxSamples / count.
      const j = Math.floor(random() * this.count);
      if (j < maxSamples) this.samples[j] = v;
    }
  }

  summary(): MetricSummary {
    const sorted = Float64Array.from(this.samples).sort();
    const p95 = sorted[Math.max(0, Math.ceil(0.95 * sorted.length) - 1)]!;
    return { count: this.count, mean: this.sum / this.count, min: this.min, max: this.max, p95 };
  }
}

interface OpenWindow {
  readonly start: number;
  frames: number;
  readonly seeds: Set<number>;
  readonly metrics: Map<string, MetricWindow>;
}

export class TelemetryAggregator {
  readonly windowMs: number;
  private readonly maxSamples: number;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly onWindow: ((summary: LayerWindowSummary) => void) | undefined;
  /** One open window a layer: a frame of a later window closes the one before. */
  private readonly open = new Map<string, OpenWindow>();
  /** Closed, waiting for `flush` (only without `onWindow`). */
  private readonly closed: LayerWindowSummary[] = [];
  private readonly latestByLayer = new Map<string, Map<number, Record<string, number>>>();

  constructor(options: TelemetryAggregatorOptions = {}) {
    this.windowMs = options.windowMs ?? AGGREGATOR_DEFAULTS.windowMs;
    this.maxSamples = options.maxSamples ?? AGGREGATOR_DEFAULTS.maxSamples;
    if (!(this.windowMs > 0)) throw new RangeError(`aggregator option windowMs must be positive, got ${this.windowMs}`);
    if (!(this.maxSamples >= 1)) throw new RangeError(`aggregator option maxSamples must be at least 1, got ${this.maxSamples}`);
    const clock = Clock.Clock.defaultValue();
    this.now = options.now ?? (() => clock.currentTimeMillisUnsafe());
    this.random = options.random ?? Math.random;
    this.onWindow = options.onWindow;
  }

  /** Folds a frame into its layer's window of now. */
  add(frame: TelemetryFrame): void {
    const window = this.windowOf(frame.layerId);
    window.frames++;
    const latest = this.latestOf(frame.layerId);
    const { seeds, columns, values } = frame;
    for (let i = 0; i < seeds.length; i++) {
      const seed = seeds[i]!;
      window.seeds.add(seed);
      let record = latest.get(seed);
      if (record === undefined) latest.set(seed, (record = {}));
      for (let c = 0; c < columns.length; c++) {
        const v = values[c]![i]!;
        if (v !== v) continue;
        this.metricOf(window, columns[c]!).add(v, this.maxSamples, this.random);
        record[columns[c]!] = v;
      }
    }
  }

  /** A SeedMetricsSnapshot's `metrics` count as one seed record of its layer. */
  addSnapshot(snapshot: SeedMetricsSnapshot): void {
    const names = Object.keys(snapshot.metrics);
    this.add({
      layerId: snapshot.layer_id,
      messageId: snapshot.message_id,
      timestamp: snapshot.timestamp,
      source: snapshot.source,
      window: [snapshot.timestamp, snapshot.timestamp],
      totalSeeds: 0,
      activeSeeds: 0,
      performanceSummary: {},
      anomalies: [],
      seeds: Float64Array.of(snapshot.seed_id),
      columns: names,
      values: names.map((n) => Float64Array.of(snapshot.metrics[n]!)),
    });
  }

  /** What the telemetry consumer hands over (`onTelemetry`): its frames and snapshots. */
  addContent(content: TelemetryContent): void {
    for (const frame of content.frames) this.add(frame);
    for (const snapshot of content.snapshots) this.addSnapshot(snapshot);
  }

  /**
   * Closes every window that ended at or before `now` and returns the windows closed since the
   * last flush, oldest first. Each window is returned once (or given to `onWindow`, not both).
   */
  flush(now: number = this.now()): readonly LayerWindowSummary[] {
    for (const [layerId, window] of this.open) {
      if (window.start + this.windowMs <= now) {
        this.open.delete(layerId);
        this.close(layerId, window);
      }
    }
    const out = this.closed.splice(0);
    out.sort((a, b) => a.windowStart - b.windowStart || (a.layerId < b.layerId ? -1 : a.layerId > b.layerId ? 1 : 0));
    return out;
  }

  /**
   * The latest value of each metric of each seed of the layer, seed id -> {metric: value}. A
   * metric a seed stopped reporting keeps its last value. A live view: it changes with `add`.
   */
  latest(layerId: string): ReadonlyMap<number, Readonly<Record<string, number>>> {
    return this.latestByLayer.get(layerId) ?? EMPTY;
  }

  /** Forgets a layer (removed from the run): its open window is dropped, its latest values too. */
  forget(layerId: string): void {
    this.open.delete(layerId);
    this.latestByLayer.delete(layerId);
  }

  private windowOf(layerId: string): OpenWindow {
    const start = Math.floor(this.now() / this.windowMs) * this.windowMs;
    const current = this.open.get(layerId);
    // A clock that stepped back keeps filling the open window rather than reopening an old one.
    if (current !== undefined && start <= current.start) return current;
    if (current !== undefined) this.close(layerId, current);
    const window: OpenWindow = { start, frames: 0, seeds: new Set(), metrics: new Map() };
    this.open.set(layerId, window);
    return window;
  }

  private metricOf(window: OpenWindow, name: string): MetricWindow {
    let m = window.metrics.get(name);
    if (m === undefined) window.metrics.set(name, (m = new MetricWindow()));
    return m;
  }

  private latestOf(layerId: string): Map<number, Record<string, number>> {
    let latest = this.latestByLayer.get(layerId);
    if (latest === undefined) this.latestByLayer.set(layerId, (latest = new Map()));
    return latest;
  }

  private close(layerId: string, window: OpenWindow): void {
    const metrics: Record<string, MetricSummary> = {};
    for (const [name, m] of window.metrics) metrics[name] = m.summary();
    const summary: LayerWindowSummary = {
      layerId,
      windowStart: window.start,
      windowEnd: window.start + this.windowMs,
      frames: window.frames,
      seedsSeen: window.seeds.size,
      metrics,
    };
    if (this.onWindow === undefined) {
      this.closed.push(summary);
      return;
    }
    try {
      this.onWindow(summary);
    } catch {
      // the listener's failure is its own
    }
  }
}

const EMPTY: ReadonlyMap<number, Readonly<Record<string, number>>> = new Map();

/** An aggregator on the Clock of the Effect that makes it (a TestClock in tests). */
export const makeTelemetryAggregator = (options: Omit<TelemetryAggregatorOptions, "now"> = {}): Effect.Effect<TelemetryAggregator> =>
  Effect.gen(function* () {
    const clock = yield* Clock.Clock;
    return new TelemetryAggregator({ ...options, now: () => clock.currentTimeMillisUnsafe() });
  });
