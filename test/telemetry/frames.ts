import type { TelemetryFrame } from "../../src/telemetry/frame.ts";

/** A frame of `layerId` with `columns[metric][i]` the value of seed `seeds[i]` (NaN: not reported). */
export const frameOf = (layerId: string, seeds: readonly number[], columns: Readonly<Record<string, readonly number[]>>): TelemetryFrame => ({
  layerId,
  messageId: `m-${layerId}-${seeds.join(",")}`,
  timestamp: 0,
  source: "test",
  window: [0, 1],
  totalSeeds: seeds.length,
  activeSeeds: seeds.length,
  performanceSummary: {},
  anomalies: [],
  seeds: Float64Array.from(seeds),
  columns: Object.keys(columns),
  values: Object.values(columns).map((v) => Float64Array.from(v)),
});

/** A deterministic uniform [0, 1) (mulberry32), so sampled and noisy series are the same every run. */
export { seededRandom as seeded } from "../../src/demo/random.ts";

