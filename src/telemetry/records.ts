import { SEED_KEY_PATTERN } from "../protocol/messages.ts";
import { MAX_DECIMAL_KEY, putDecimalKey, putNumber, type EncodedKey, type MsgpackWriter } from "./msgpack-writer.ts";

/**
 * What the data plane hands the publisher: one window of one layer's per-seed metrics, in
 * whichever form it has them. A record is one seed's metrics of one window.
 *
 * - `SeedRows`: the telemetry tensor as it comes out of the backend, row-major
 *   `[seeds x columns]` (kasmina's TelemetrySink and SeedMetricsBatch). The fast form: no
 *   object is built per seed.
 * - a Map from seed id, or an object keyed by seed id in decimal, of `{ metric: value }`.
 *
 * NaN values are left out (a metric that does not apply to the seed's state, telemetry.ts).
 * The publisher encodes a window before `publishWindow` returns and keeps no reference to it.
 */
export interface SeedRows {
  /** Metric names, one per column. */
  readonly columns: readonly string[];
  /** `rows[seed * columns.length + column]`. */
  readonly rows: Float32Array | Float64Array;
  /** Seed id of each row; default the row index. */
  readonly seedIds?: ArrayLike<number>;
}

export type SeedRecords =
  | SeedRows
  | ReadonlyMap<number, Readonly<Record<string, number>>>
  | Readonly<Record<string, Readonly<Record<string, number>>>>;

/** A window's records as the encoder walks them: how many, and how to write the i-th. */
export interface RecordSource {
  readonly count: number;
  /** Writes record i (seed key, then its map of metrics) into `w`. */
  readonly write: (w: MsgpackWriter, i: number) => void;
}

export type KeyBytes = (metric: string) => EncodedKey;

const isSeedRows = (r: SeedRecords): r is SeedRows =>
  !(r instanceof Map) && ArrayBuffer.isView((r as SeedRows).rows) && Array.isArray((r as SeedRows).columns);

const isSeedId = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;

/** Throws (RangeError/TypeError) on records no reader would accept: a programming error of the caller. */
export const recordSource = (records: SeedRecords, key: KeyBytes): RecordSource => {
  if (isSeedRows(records)) return rowsSource(records, key);
  if (records instanceof Map) return mapSource(records as ReadonlyMap<number, Readonly<Record<string, number>>>, key);
  return objectSource(records as Readonly<Record<string, Readonly<Record<string, number>>>>, key);
};

const rowsSource = ({ columns, rows, seedIds }: SeedRows, key: KeyBytes): RecordSource => {
  const nc = columns.length;
  if (nc === 0 ? rows.length !== 0 : rows.length % nc !== 0) {
    throw new RangeError(`telemetry rows hold ${rows.length} values, not a multiple of its ${nc} columns`);
  }
  const count = nc === 0 ? (seedIds?.length ?? 0) : rows.length / nc;
  if (seedIds !== undefined) {
    if (seedIds.length !== count) throw new RangeError(`telemetry rows hold ${count} seeds but seedIds names ${seedIds.length}`);
    for (let i = 0; i < count; i++) if (!isSeedId(seedIds[i])) throw new RangeError(`seedIds[${i}] = ${seedIds[i]} is not a seed id (a non-negative integer)`);
  }
  const keys = columns.map(key);
  // Every key's words in one array, column c's at [wordAt[c], wordAt[c + 1]): the loop below
  // reads no object per key.
  const wordAt = new Int32Array(nc + 1);
  for (let c = 0; c < nc; c++) wordAt[c + 1] = wordAt[c]! + keys[c]!.words.length;
  const words = new Int32Array(wordAt[nc]!);
  const keyLength = new Int32Array(nc);
  for (let c = 0; c < nc; c++) {
    words.set(keys[c]!.words, wordAt[c]!);
    keyLength[c] = keys[c]!.bytes.length;
  }
  // A value from a Float32Array that is not an integer goes out as float32, exactly: no need
  // to test whether it would need a float64.
  const float32 = rows instanceof Float32Array;
  // Room one record can take: seed key, map header, and per metric its key (in whole words) and a float64.
  const room = 16 + 5 + words.length * 4 + nc * 9;
  return {
    count,
    write: (w, i) => {
      const seed = seedIds === undefined ? i : seedIds[i]!;
      if (seed > MAX_DECIMAL_KEY) w.decimalKey(seed);
      w.ensure(room);
      const out = w.bytes;
      const view = w.view;
      let p = w.pos;
      if (seed <= MAX_DECIMAL_KEY) p = putDecimalKey(out, p, seed);
      const base = i * nc;
      // The map header goes in front once the NaNs are left out: one byte when under 16 columns.
      const header = p;
      p += nc < 16 ? 1 : 3;
      let n = 0;
      for (let c = 0; c < nc; c++) {
        const v = rows[base + c]!;
        if (v !== v) continue;
        for (let k = wordAt[c]!, end = wordAt[c + 1]!, q = p; k < end; k++, q += 4) view.setInt32(q, words[k]!);
        p += keyLength[c]!;
        if (float32 && !Number.isInteger(v)) {
          out[p] = 0xca;
          view.setFloat32(p + 1, v);
          p += 5;
        } else p = putNumber(out, view, p, v);
        n++;
      }
      if (nc < 16) out[header] = 0x80 | n;
      else {
        out[header] = 0xde;
        view.setUint16(header + 1, n);
      }
      w.pos = p;
    },
  };
};

const writeMetrics = (w: MsgpackWriter, metrics: Readonly<Record<string, number>>, seed: string, key: KeyBytes): void => {
  if (typeof metrics !== "object" || metrics === null) throw new TypeError(`metrics of seed ${seed} must be a map of numbers`);
  let n = 0;
  for (const k in metrics) {
    const v = metrics[k];
    if (typeof v !== "number") throw new TypeError(`metric ${k} of seed ${seed} is ${typeof v}, not a number`);
    if (v === v) n++;
  }
  w.mapHeader(n);
  for (const k in metrics) {
    const v = metrics[k]!;
    if (v !== v) continue;
    w.key(key(k));
    w.number(v);
  }
};

const mapSource = (records: ReadonlyMap<number, Readonly<Record<string, number>>>, key: KeyBytes): RecordSource => {
  const seeds = [...records.keys()];
  for (const s of seeds) if (!isSeedId(s)) throw new RangeError(`seed id ${String(s)} is not a non-negative integer`);
  return {
    count: seeds.length,
    write: (w, i) => {
      const seed = seeds[i]!;
      w.decimalKey(seed);
      writeMetrics(w, records.get(seed)!, String(seed), key);
    },
  };
};

const objectSource = (records: Readonly<Record<string, Readonly<Record<string, number>>>>, key: KeyBytes): RecordSource => {
  const seeds = Object.keys(records);
  for (const s of seeds) if (!SEED_KEY_PATTERN.test(s)) throw new RangeError(`seed key ${JSON.stringify(s)} is not a seed id in decimal`);
  return {
    count: seeds.length,
    write: (w, i) => {
      const seed = seeds[i]!;
      w.str(seed);
      writeMetrics(w, records[seed]!, seed, key);
    },
  };
};
