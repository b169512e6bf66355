/**
 * The records of telemetry-throughput, shared by the benchmark and its producer process: layers
 * of 4096 seeds whose windows have the telemetry tensor's 10 columns (kasmina/telemetry.ts), NaN
 * where a metric does not apply, so a dormant seed (3 in 4 here) reports 7 values (drift and
 * alpha 0) and an active one all 10.
 */
import { TELEMETRY_COLUMNS } from "../../src/kasmina/telemetry.ts";

export const SEEDS = 4096;
export const LAYERS: readonly string[] = ["L0", "L1", "L2", "L3"];
export const COLUMNS = TELEMETRY_COLUMNS;
/** Values per record, on average: 3 dormant seeds of 7 and one active of 10. */
export const METRICS_PER_RECORD = (3 * 7 + 10) / 4;

/** One window of a layer, `[seeds x columns]` row-major, deterministic per `salt`. */
export const windowRows = (salt: number): Float32Array => {
  const nc = COLUMNS.length;
  const rows = new Float32Array(SEEDS * nc);
  let x = salt + 1;
  for (let s = 0; s < SEEDS; s++) {
    const active = s % 4 === 0;
    for (let c = 0; c < nc; c++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      const name = COLUMNS[c]!;
      rows[s * nc + c] = !active && (name === "drift" || name === "alpha") ? 0 : !active && c >= 7 ? Number.NaN : x / 2147483648;
    }
  }
  return rows;
};

/** One seed's record as the naive and BullMQ arms move it: the same metrics the esper arm reports. */
export const recordOf = (rows: Float32Array, seed: number, layer: string, step: number) => {
  const nc = COLUMNS.length;
  const metrics: Record<string, number> = {};
  for (let c = 0; c < nc; c++) {
    const v = rows[seed * nc + c]!;
    if (!Number.isNaN(v)) metrics[COLUMNS[c]!] = v;
  }
  return { layer_id: layer, seed_id: seed, step, metrics };
};
