import { describe, expect, it } from "vitest";
import type { PerformanceAlert } from "../../src/protocol/messages.ts";
import type { LayerWindowSummary } from "../../src/telemetry/aggregate.ts";
import { AnomalyDetector, metricDirection, zScore, type AnomalyDetectorOptions } from "../../src/telemetry/anomaly.ts";
import { seeded } from "./frames.ts";

/** Window i of layer L1 (1 s windows) whose metrics have these means. */
const windowOf = (i: number, means: Readonly<Record<string, number>>, layerId = "L1"): LayerWindowSummary => ({
  layerId,
  windowStart: i * 1_000,
  windowEnd: (i + 1) * 1_000,
  frames: 1,
  seedsSeen: 10,
  metrics: Object.fromEntries(Object.entries(means).map(([name, mean]) => [name, { count: 10, mean, min: mean, max: mean, p95: mean }])),
});

/** Runs a series of one metric through a fresh detector; the alerts with the window each came in. */
const run = (metric: string, series: readonly number[], options: AnomalyDetectorOptions = {}): { at: number; alert: PerformanceAlert }[] => {
  const detector = new AnomalyDetector(options);
  return series.flatMap((mean, i) => detector.observe(windowOf(i, { [metric]: mean })).map((alert) => ({ at: i, alert })));
};

/**
 * Noise bounded to ±amplitude (uniform, seeded): a bounded series never passes 1.73 of its sd,
 * so "raises nothing" is a property of the rule, not of a lucky draw. (On Gaussian noise 3 sd
 * fires on ~0.9% of windows, by design; anomaly.ts.)
 */
const noisy = (n: number, level: (i: number) => number, amplitude: number, seed = 1) => {
  const random = seeded(seed);
  return Array.from({ length: n }, (_, i) => level(i) + (2 * random() - 1) * amplitude);
};

describe("anomaly detection on window means", () => {
  it("raises nothing on a flat noisy series", () => {
    expect(run("reconstruction_loss", noisy(500, () => 1, 0.05))).toEqual([]);
    expect(run("gradient_norm", noisy(500, () => 40, 10, 2))).toEqual([]);
  });

  it("raises one warning for a step of a few sd in a loss, a degradation, and takes the new level as normal after", () => {
    const alerts = run("reconstruction_loss", noisy(150, (i) => (i < 60 ? 1 : 1.05), 0.02));
    expect(alerts).toHaveLength(1);
    const [{ at, alert }] = alerts as [{ at: number; alert: PerformanceAlert }];
    expect(at).toBe(60);
    expect(alert).toMatchObject({
      message_type: "PerformanceAlert",
      layer_id: "L1",
      seed_id: null,
      alert_type: "degradation",
      severity: "warning",
      metric_name: "reconstruction_loss",
      timestamp: 61,
      details: { z_threshold: 3, baseline_windows: 20, window: [60_000, 61_000] },
    });
    const { z, mean, sd } = alert.details as { z: number; mean: number; sd: number };
    expect(z).toBeGreaterThanOrEqual(3);
    expect(z).toBeLessThan(6);
    expect(mean).toBeCloseTo(1, 1);
    expect(sd).toBeGreaterThan(0);
    // The threshold is in the metric's unit, between the baseline and the value that passed it.
    expect(alert.threshold!).toBeGreaterThan(mean);
    expect(alert.threshold!).toBeLessThan(alert.metric_value);
    expect(alert.recommended_action).toContain("learning rate");
    expect(alert.recommended_action).not.toContain("emergency stop");
  });

  it("raises a critical alert past twice the threshold, recommending an emergency stop of the layer", () => {
    const alerts = run("reconstruction_loss", noisy(150, (i) => (i < 60 ? 1 : 1.5), 0.02));
    expect(alerts.map(({ at, alert }) => [at, alert.alert_type, alert.severity])).toEqual([[60, "degradation", "critical"]]);
    expect(alerts[0]!.alert.recommended_action).toContain("consider an emergency stop of layer L1");
  });

  it("calls a fall of a loss an improvement, severity info however large", () => {
    const alerts = run("val_loss", noisy(100, (i) => (i < 60 ? 1 : 0.5), 0.02));
    expect(alerts.map(({ alert }) => [alert.alert_type, alert.severity])).toEqual([["improvement", "info"]]);
  });

  it("takes direction from the metric: a stability score falling is a degradation, a metric without one an anomaly", () => {
    expect(run("stability_score", noisy(100, (i) => (i < 60 ? 0.9 : 0.5), 0.01)).map(({ alert }) => [alert.alert_type, alert.severity])).toEqual([
      ["degradation", "critical"],
    ]);
    expect(run("gradient_norm", noisy(100, (i) => (i < 60 ? 40 : 400), 1)).map(({ alert }) => alert.alert_type)).toEqual(["anomaly"]);
    expect([metricDirection("error_rate"), metricDirection("accuracy"), metricDirection("alpha")]).toEqual(["lower_is_better", "higher_is_better", "none"]);
  });

  it("does not trip on a slow drift: the rolling baseline follows it", () => {
    expect(run("reconstruction_loss", noisy(500, (i) => 1 + 0.01 * i, 0.02))).toEqual([]);
    // Without noise the drift is all the baseline's spread: sqrt(3(n+1)/n) sd at most.
    expect(run("reconstruction_loss", Array.from({ length: 500 }, (_, i) => 1 + 0.5 * i))).toEqual([]);
  });

  it("raises a critical alert for a window whose mean is not finite (an exploding gradient), with or without a baseline", () => {
    const alerts = run("gradient_norm", [1, 1, Number.POSITIVE_INFINITY, 1]);
    expect(alerts.map(({ at, alert }) => [at, alert.severity, alert.alert_type, alert.details["non_finite"]])).toEqual([[2, "critical", "anomaly", true]]);
    expect(alerts[0]!.alert.metric_value).toBe(Number.MAX_VALUE);
    expect(alerts[0]!.alert.recommended_action).toMatch(/not finite.*stop the layer/);
  });

  it("judges nothing before minHistory windows", () => {
    expect(run("reconstruction_loss", [1, 1.01, 0.99, 1, 50])).toEqual([]);
    expect(run("reconstruction_loss", [1, 1.01, 0.99, 1, 1.02, 50]).map(({ at }) => at)).toEqual([5]);
  });

  it("judges against the last `history` windows only: a series that calmed down is judged by its calm", () => {
    const series = [...noisy(100, () => 1, 1), ...noisy(25, () => 1, 0.005, 3), 1.5];
    expect(run("gradient_norm", series).map(({ at }) => at)).toEqual([125]);
  });

  it("on a flat series ignores jitter in the last digits but not a move of a few percent", () => {
    const flat = Array.from({ length: 30 }, () => 2);
    expect(run("reconstruction_loss", [...flat, 2.001])).toEqual([]);
    expect(run("reconstruction_loss", [...flat, 2.07]).map(({ alert }) => alert.severity)).toEqual(["warning"]);
    expect(run("reconstruction_loss", [...flat, 2.2]).map(({ alert }) => alert.severity)).toEqual(["critical"]);
    const zero = Array.from({ length: 30 }, () => 0);
    expect(run("error_rate", [...zero, 1e-9])).toEqual([]);
    expect(run("error_rate", [...zero, 0.01]).map(({ alert }) => [alert.alert_type, alert.severity])).toEqual([["degradation", "critical"]]);
  });

  it("keeps baselines per layer and metric, and judges only the metrics it is told to", () => {
    const detector = new AnomalyDetector({ metrics: ["loss"] });
    const alerts: PerformanceAlert[] = [];
    for (let i = 0; i < 30; i++) {
      alerts.push(...detector.observe(windowOf(i, { loss: 1 + (i % 2) * 0.01, alpha: 0 }, "L1")));
      alerts.push(...detector.observe(windowOf(i, { loss: i < 29 ? 5 + (i % 2) * 0.01 : 1 }, "L2")));
    }
    alerts.push(...detector.observe(windowOf(30, { loss: 1, alpha: 1 }, "L1")));
    expect(alerts.map((a) => [a.layer_id, a.metric_name, a.alert_type])).toEqual([["L2", "loss", "improvement"]]);
  });
});

describe("zScore", () => {
  it("is (value - mean) / sample sd, the sd floored at a fraction of the mean", () => {
    expect(zScore([1, 2, 3, 4, 5], 8, 0.01, 1e-6)).toEqual({ z: 5 / Math.sqrt(2.5), mean: 3, sd: Math.sqrt(2.5), sdUsed: Math.sqrt(2.5) });
    expect(zScore([10, 10, 10], 11, 0.01, 1e-6)).toEqual({ z: 10, mean: 10, sd: 0, sdUsed: 0.1 });
    expect(zScore([0, 0, 0], 1e-5, 0.01, 1e-6).z).toBeCloseTo(10);
  });
});
