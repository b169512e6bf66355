/**
 * Anomalies in a layer's telemetry: each window's mean of a metric judged by its z-score against
 * the means of the windows before it (a rolling baseline of `history` windows), per layer and
 * metric. The verdicts are PerformanceAlerts (docs/protocol.md), layer-level (`seed_id` null).
 *
 * Why these rules:
 * - A rolling baseline follows a slow drift: a metric moving by the same step every window sits
 *   sqrt(3(n+1)/n) sd from the mean of its last n windows however steep the drift (1.8 at 20,
 *   1.9 at 5: the baseline lags (n+1)/2 steps and spreads sqrt(n(n+1)/12)), under a threshold of 3.
 * - Once a level has been reported, the history starts again from it: judging a new level
 *   against the old one would repeat the same news every window. The next `minHistory` windows
 *   are then not judged.
 * - A flat series (sd near 0) is judged as though its sd were `relativeSdFloor` of its mean
 *   (at least `absoluteSdFloor`): jitter in the last digits is ignored, a move of
 *   threshold x 1% of the mean (3% with the defaults) is not. A series flat at 0 that leaves
 *   it by more than threshold x 1e-6 is always reported (an error rate no longer zero).
 * - On Gaussian noise, 3 sd against a 20-window baseline fires on about 0.9% of windows (the
 *   baseline's own error makes z a Student's t, 19 degrees of freedom, scaled by sqrt(1.05));
 *   critical (6 sd) on about 1 in 80,000. Raise `threshold` where a warning a few minutes is too many.
 *
 * Severity: `critical` at 2 x threshold, else `warning`; an improvement is `info` whatever its
 * size, since Tamiyo counts a layer's critical alerts towards an emergency stop.
 *
 * Alert type: by the metric's direction (`direction` option): for a loss-like metric (lower is
 * better) a rise is a `degradation` and a fall an `improvement`, the other way round for a
 * score (higher is better); a metric with no direction gives an `anomaly`.
 */
import { performanceAlert } from "../protocol/make.ts";
import type { PerformanceAlert } from "../protocol/messages.ts";
import type { LayerWindowSummary } from "./aggregate.ts";

export type MetricDirection = "lower_is_better" | "higher_is_better" | "none";

export interface AnomalyDetectorOptions {
  /** |z| at which a window's mean is reported (critical at twice this). @defaultValue 3 */
  readonly threshold?: number;
  /** Windows in the baseline. @defaultValue 20 */
  readonly history?: number;
  /** Windows the baseline must hold before anything is judged. @defaultValue 5 */
  readonly minHistory?: number;
  /** Least sd a baseline is judged with, as a fraction of its mean's magnitude. @defaultValue 0.01 */
  readonly relativeSdFloor?: number;
  /** Least sd a baseline is judged with, absolute (for means near 0). @defaultValue 1e-6 */
  readonly absoluteSdFloor?: number;
  /** Which way is better for a metric. @defaultValue `metricDirection` (by name) */
  readonly direction?: (metric: string) => MetricDirection;
  /** Only these metrics are judged. @defaultValue every metric of the summaries */
  readonly metrics?: readonly string[];
  /** `source` of the alerts. @defaultValue "esper.anomaly" */
  readonly source?: string;
}

export const ANOMALY_DEFAULTS = {
  threshold: 3,
  history: 20,
  minHistory: 5,
  relativeSdFloor: 0.01,
  absoluteSdFloor: 1e-6,
  source: "esper.anomaly",
} as const;

const LOWER_IS_BETTER = /loss|error|latency/i;
const HIGHER_IS_BETTER = /accuracy|stability|improvement|performance_delta/i;

/** The default direction, by name: losses, errors and latencies fall when things go well; accuracy, stability and improvements rise. */
export const metricDirection = (metric: string): MetricDirection =>
  LOWER_IS_BETTER.test(metric) ? "lower_is_better" : HIGHER_IS_BETTER.test(metric) ? "higher_is_better" : "none";

export interface ZScore {
  readonly z: number;
  /** Mean and sample sd of the baseline. */
  readonly mean: number;
  readonly sd: number;
  /** The sd z was computed with: `sd`, or the floor when the baseline is flatter. */
  readonly sdUsed: number;
}

/** `value` against `baseline` (at least 2 values), the sd floored as AnomalyDetectorOptions says. */
export const zScore = (baseline: readonly number[], value: number, relativeSdFloor: number, absoluteSdFloor: number): ZScore => {
  const n = baseline.length;
  let sum = 0;
  for (const v of baseline) sum += v;
  const mean = sum / n;
  let squares = 0;
  for (const v of baseline) squares += (v - mean) ** 2;
  const sd = Math.sqrt(squares / (n - 1));
  const sdUsed = Math.max(sd, relativeSdFloor * Math.abs(mean), absoluteSdFloor);
  return { z: (value - mean) / sdUsed, mean, sd, sdUsed };
};

type AlertType = "degradation" | "improvement" | "anomaly";

const alertTypeOf = (direction: MetricDirection, z: number): AlertType =>
  direction === "none" ? "anomaly" : (direction === "lower_is_better") === z > 0 ? "degradation" : "improvement";

/** What an operator (or Tamiyo) should do, by what moved and how badly. */
export const recommendedAction = (layerId: string, metric: string, type: AlertType, severity: "info" | "warning" | "critical"): string => {
  if (type === "improvement") return `no action needed; note what changed on layer ${layerId} (${metric} improved)`;
  const cause = LOWER_IS_BETTER.test(metric)
    ? /error/i.test(metric)
      ? `check the inputs and the blueprint grafted last on layer ${layerId}`
      : `check the learning rate and the blueprint grafted last on layer ${layerId}`
    : /stability/i.test(metric)
      ? `slow the grafting (alpha ramp) of the seeds of layer ${layerId}`
      : `inspect ${metric} of layer ${layerId}`;
  return severity === "critical" ? `${cause}; consider an emergency stop of layer ${layerId}` : `${cause}; hold new growth there until ${metric} settles`;
};

export class AnomalyDetector {
  private readonly threshold: number;
  private readonly history: number;
  private readonly minHistory: number;
  private readonly relativeSdFloor: number;
  private readonly absoluteSdFloor: number;
  private readonly direction: (metric: string) => MetricDirection;
  private readonly only: ReadonlySet<string> | undefined;
  private readonly source: string;
  /** Window means by layer, then metric, oldest first, at most `history`. */
  private readonly baselines = new Map<string, Map<string, number[]>>();

  constructor(options: AnomalyDetectorOptions = {}) {
    this.threshold = options.threshold ?? ANOMALY_DEFAULTS.threshold;
    this.history = options.history ?? ANOMALY_DEFAULTS.history;
    this.minHistory = options.minHistory ?? ANOMALY_DEFAULTS.minHistory;
    this.relativeSdFloor = options.relativeSdFloor ?? ANOMALY_DEFAULTS.relativeSdFloor;
    this.absoluteSdFloor = options.absoluteSdFloor ?? ANOMALY_DEFAULTS.absoluteSdFloor;
    this.direction = options.direction ?? metricDirection;
    this.only = options.metrics === undefined ? undefined : new Set(options.metrics);
    this.source = options.source ?? ANOMALY_DEFAULTS.source;
    if (!(this.threshold > 0)) throw new RangeError(`anomaly option threshold must be positive, got ${this.threshold}`);
    // The sample sd needs two values.
    if (!(this.minHistory >= 2)) throw new RangeError(`anomaly option minHistory must be at least 2, got ${this.minHistory}`);
    if (!(this.history >= this.minHistory)) throw new RangeError(`anomaly option history (${this.history}) must be at least minHistory (${this.minHistory})`);
    if (!(this.absoluteSdFloor > 0)) throw new RangeError(`anomaly option absoluteSdFloor must be positive, got ${this.absoluteSdFloor}`);
  }

  /** Judges a closed window, then adds it to its baselines. Returns an alert per metric out of range. */
  observe(summary: LayerWindowSummary): PerformanceAlert[] {
    const alerts: PerformanceAlert[] = [];
    let byMetric = this.baselines.get(summary.layerId);
    if (byMetric === undefined) this.baselines.set(summary.layerId, (byMetric = new Map()));
    for (const metric of Object.keys(summary.metrics)) {
      if (this.only !== undefined && !this.only.has(metric)) continue;
      const value = summary.metrics[metric]!.mean;
      if (!Number.isFinite(value)) {
        // An infinite gradient or activation is the anomaly this exists to catch, whatever the baseline says.
        alerts.push(this.nonFinite(summary, metric));
        continue;
      }
      let baseline = byMetric.get(metric);
      if (baseline === undefined) byMetric.set(metric, (baseline = []));
      const alert = baseline.length >= this.minHistory ? this.judge(summary, metric, value, baseline) : undefined;
      if (alert !== undefined) {
        alerts.push(alert);
        baseline.length = 0;
      }
      baseline.push(value);
      if (baseline.length > this.history) baseline.shift();
    }
    return alerts;
  }

  /** Forgets a layer's baselines (removed from the run, or restarted). */
  forget(layerId: string): void {
    this.baselines.delete(layerId);
  }

  /** A window whose mean is not a number: some cell was infinite (NaN cells never reach a summary). */
  private nonFinite(summary: LayerWindowSummary, metric: string): PerformanceAlert {
    const { min, max, count } = summary.metrics[metric]!;
    return performanceAlert({
      source: this.source,
      timestamp: summary.windowEnd / 1000,
      layer_id: summary.layerId,
      seed_id: null,
      alert_type: "anomaly",
      severity: "critical",
      metric_name: metric,
      // The wire needs a finite number (the JSON codec has no Infinity): the largest one, signed, stands for it.
      metric_value: max === Number.POSITIVE_INFINITY || !(min === Number.NEGATIVE_INFINITY) ? Number.MAX_VALUE : -Number.MAX_VALUE,
      threshold: null,
      details: { non_finite: true, window: [summary.windowStart, summary.windowEnd], count },
      recommended_action: `${metric} of layer ${summary.layerId} is not finite: the training diverged; stop the layer (esper send ... EmergencyStop) and lower the learning rate`,
    });
  }

  private judge(summary: LayerWindowSummary, metric: string, value: number, baseline: readonly number[]): PerformanceAlert | undefined {
    const score = zScore(baseline, value, this.relativeSdFloor, this.absoluteSdFloor);
    const size = Math.abs(score.z);
    if (!(size >= this.threshold)) return undefined;
    const type = alertTypeOf(this.direction(metric), score.z);
    const severity = type === "improvement" ? "info" : size >= 2 * this.threshold ? "critical" : "warning";
    return performanceAlert({
      source: this.source,
      // The window's end, not the wall clock: the same windows give the same alerts.
      timestamp: summary.windowEnd / 1000,
      layer_id: summary.layerId,
      seed_id: null,
      alert_type: type,
      severity,
      metric_name: metric,
      metric_value: value,
      // In the metric's unit, as metric_value: the value past which this window would have been reported.
      threshold: score.mean + Math.sign(score.z) * this.threshold * score.sdUsed,
      details: {
        z: score.z,
        mean: score.mean,
        sd: score.sd,
        sd_used: score.sdUsed,
        z_threshold: this.threshold,
        baseline_windows: baseline.length,
        window: [summary.windowStart, summary.windowEnd],
        count: summary.metrics[metric]!.count,
      },
      recommended_action: recommendedAction(summary.layerId, metric, type, severity),
    });
  }
}
