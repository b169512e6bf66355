import type { CheckedRecords } from "../../telemetry/records.ts";
import { MAX_DECIMAL_KEY, putDecimalKey, putNumber, type EncodedKey, type MsgpackWriter } from "./msgpack-writer.ts";

/**
 * The fast path's writing of a window's records into a LayerHealthReport's `health_metrics`:
 * each record's seed key and its map of metrics, NaN values left out, straight from the records
 * into a MsgpackWriter (no object per seed). What it writes reads back as the general path's
 * reading of the same record (records.ts healthRecord); test/telemetry/writer.test.ts pins that.
 */

/** Writes record i (seed key, then its map of metrics) into `w`. */
export type RecordWriter = (w: MsgpackWriter, i: number) => void;

/** A metric name's pre-encoded bytes, from a cache its owner keeps. */
export type KeyBytes = (metric: string) => EncodedKey;

export const recordWriter = (records: CheckedRecords, key: KeyBytes): RecordWriter => {
  switch (records.kind) {
    case "rows":
      return rowsWriter(records.columns, records.rows, records.seedIds, key);
    case "map": {
      const { seeds, metrics } = records;
      return (w, i) => {
        w.decimalKey(seeds[i]!);
        writeMetrics(w, metrics[i]!, key);
      };
    }
    case "object": {
      const { seeds, metrics } = records;
      return (w, i) => {
        w.str(seeds[i]!);
        writeMetrics(w, metrics[i]!, key);
      };
    }
  }
};

const rowsWriter = (columns: readonly string[], rows: Float32Array | Float64Array, seedIds: ArrayLike<number> | undefined, key: KeyBytes): RecordWriter => {
  const nc = columns.length;
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
  return (w, i) => {
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
  };
};

const writeMetrics = (w: MsgpackWriter, metrics: Readonly<Record<string, number>>, key: KeyBytes): void => {
  let n = 0;
  for (const k in metrics) if (metrics[k] === metrics[k]) n++;
  w.mapHeader(n);
  for (const k in metrics) {
    const v = metrics[k]!;
    if (v !== v) continue;
    w.key(key(k));
    w.number(v);
  }
};
