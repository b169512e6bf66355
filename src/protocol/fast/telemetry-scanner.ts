import { Result } from "effect";
import { frameEnvelope, type TelemetryFrame } from "../../telemetry/frame.ts";
import { decodeBody } from "../codec.ts";
import { decodeMessage } from "../decode-message.ts";
import { DECODE_LIMITS } from "../limits.ts";
import type { LayerHealthReport } from "../messages.ts";
import { bail, TelemetryCursor } from "./telemetry-cursor.ts";

/**
 * The fast path of the telemetry reader: a msgpack LayerHealthReport (or a TelemetryBatch of
 * them) read straight from its bytes into frames, without building an object per seed.
 *
 * Parsing health_metrics with msgpackr and the protocol decoder costs ~3 µs a seed of 7.75
 * metrics (an object per seed; measured on the 2-core dev box); walking the bytes and writing
 * numbers into columns costs ~0.3 µs. Metric names are matched byte for byte against the names
 * of the previous seed, which lists them in the same order almost always.
 *
 * It accepts exactly what the Schema path accepts, or steps aside: anything it does not fully
 * understand (a nil or string where a number belongs, a non-ASCII or `__proto__` metric name, a
 * seed id over 2^24 or seen twice, an unknown msgpack form, trailing bytes, more entries or a
 * longer name than DECODE_LIMITS allow, ...) returns undefined, and the caller decodes the entry
 * the slow way, which accepts it or says why not.
 * The envelope (everything but health_metrics) goes through the protocol's own decoder.
 * test/telemetry/decode.test.ts pins it to the Schema path.
 *
 * A scanner reads one entry at a time and keeps scratch space from one to the next (the seeds
 * seen, how many columns to expect); a reader keeps one, a one-off read makes its own.
 */

// Seed ids past MAX_STAMPED step aside.
const MAX_STAMPED = 1 << 24;
const { maxEntries: MAX_ENTRIES, maxStringLength: MAX_STRING_LENGTH } = DECODE_LIMITS;
const PROTO = "__proto__";

/**
 * A metric name's key as it appeared on the wire (its str header and bytes), as little-endian
 * int32 words for the hot loop (read with getInt32(at, true): no byte swap). Word i is at byte
 * 4i, except the last, which ends with the key and may overlap the one before: a key of k >= 4
 * bytes, header included, is compared in ceil(k / 4) reads. A shorter one has no words and
 * takes the general path.
 */
const keyWordsOf = (key: Uint8Array): Int32Array => {
  const k = key.length;
  if (k < 4) return new Int32Array(0);
  const words = new Int32Array((k + 3) >> 2);
  for (let i = 0; i < words.length; i++) {
    const at = i < words.length - 1 ? 4 * i : k - 4;
    words[i] = key[at]! | (key[at + 1]! << 8) | (key[at + 2]! << 16) | (key[at + 3]! << 24);
  }
  return words;
};

/** A column of the report being read: its name's bytes, its key as first seen (keyWordsOf), its values. */
interface Column {
  readonly name: Uint8Array;
  readonly keyWords: Int32Array;
  readonly keyLength: number;
  readonly values: Float64Array;
}

interface MapScan {
  /** Where the special field's value starts, or -1 when absent. */
  readonly at: number;
  /** The map without the special field, re-encoded for msgpackr: the envelope. */
  readonly envelope: Uint8Array;
  /** The special field is the map's last: its value ends where the map ends, and pos is left at it, unread. */
  readonly last: boolean;
}

export class TelemetryScanner {
  private readonly c = new TelemetryCursor();
  /** Seeds seen in the report being read: seen[seed] === generation. */
  private seen = new Uint32Array(1024);
  private generation = 0;
  /**
   * Columns of one report come out of one NaN-filled block, sized for as many columns as the
   * last report had: one allocation per report instead of one per column.
   */
  private expectedColumns = 8;

  /**
   * The frames of a msgpack `data` whose entry `type` is LayerHealthReport or TelemetryBatch, or
   * undefined when the Schema path must decide. Never throws.
   */
  scan(bytes: Uint8Array, type: string): TelemetryFrame[] | undefined {
    if (type !== "LayerHealthReport" && type !== "TelemetryBatch") return undefined;
    const c = this.c;
    c.reset(bytes);
    try {
      const frames = type === "LayerHealthReport" ? [this.report(type)] : this.batch();
      return c.pos === bytes.length ? frames : undefined;
    } catch {
      // A bail, decodeBody's BodyError (the envelope is not msgpack), a DataView read past the
      // end: whatever it was, the slow path reads the entry again and says why.
      return undefined;
    } finally {
      c.release();
    }
  }

  private batch(): TelemetryFrame[] {
    const c = this.c;
    const { at, envelope, last } = this.scanMap("messages");
    if (at < 0) bail();
    const after = c.pos;
    const parsed = decodeBody(envelope, "msgpack") as Record<string, unknown>;
    parsed.messages = [];
    const decoded = decodeMessage(parsed, "TelemetryBatch");
    if (Result.isFailure(decoded)) return bail();
    c.pos = at;
    const n = c.arrayHeader();
    if (n > c.data.length - c.pos || n > MAX_ENTRIES) bail();
    const frames: TelemetryFrame[] = [];
    for (let i = 0; i < n; i++) frames.push(this.report(undefined));
    if (!last) c.pos = after;
    return frames;
  }

  /** A LayerHealthReport at pos: its envelope through the protocol decoder, its seeds through healthColumns. */
  private report(typeField: string | undefined): TelemetryFrame {
    const c = this.c;
    const { at, envelope, last } = this.scanMap("health_metrics");
    const after = c.pos;
    const parsed = decodeBody(envelope, "msgpack");
    // Inside a batch the report has no entry type of its own: it must be a LayerHealthReport.
    const decoded = decodeMessage(parsed, typeField ?? "LayerHealthReport");
    if (Result.isFailure(decoded) || decoded.success.message_type !== "LayerHealthReport") return bail();
    const r: LayerHealthReport = decoded.success;
    if (at < 0) return { ...frameEnvelope(r), seeds: new Float64Array(0), columns: [], values: [] };
    c.pos = at;
    const frame = { ...frameEnvelope(r), ...this.healthColumns() };
    // health_metrics was the last field: the map ends where it does.
    if (!last) c.pos = after;
    return frame;
  }

  /**
   * Reads a map at pos, noting where `special` is; every other field is copied out as the
   * envelope. esper writes the special field last, and then it is not walked twice: pos stays at
   * its value for the caller to read.
   */
  private scanMap(special: string): MapScan {
    const c = this.c;
    const start = c.pos;
    const n = c.mapHeader();
    if (n > MAX_ENTRIES) bail();
    const headerEnd = c.pos;
    let at = -1;
    let pairStart = -1;
    let pairEnd = -1;
    for (let i = 0; i < n; i++) {
      const keyAt = c.pos;
      const key = c.asciiString();
      if (key === special) {
        if (at >= 0) bail();
        pairStart = keyAt;
        at = c.pos;
        if (i === n - 1) break;
        c.skip();
        pairEnd = c.pos;
      } else c.skip();
    }
    const data = c.data;
    if (at < 0) return { at, envelope: data.subarray(start, c.pos), last: false };
    const last = pairEnd < 0;
    const end = last ? at : c.pos;
    if (last) pairEnd = at;
    const envelope = new Uint8Array(5 + (pairStart - headerEnd) + (last ? 0 : end - pairEnd));
    envelope[0] = 0xdf;
    new DataView(envelope.buffer).setUint32(1, n - 1);
    envelope.set(data.subarray(headerEnd, pairStart), 5);
    if (!last) envelope.set(data.subarray(pairEnd, end), 5 + (pairStart - headerEnd));
    return { at, envelope, last };
  }

  /** Starts a report's record of the seeds it lists. */
  private newReport(): void {
    if (++this.generation === 0xffffffff) {
      this.seen.fill(0);
      this.generation = 1;
    }
  }

  /** Notes a seed of the report being read; bails on one seen before, or past the ids it keeps. */
  private markSeen(seed: number): void {
    if (seed >= MAX_STAMPED) bail();
    let seen = this.seen;
    if (seed >= seen.length) {
      const next = new Uint32Array(Math.min(MAX_STAMPED, Math.max(seed + 1, seen.length * 2)));
      next.set(seen);
      this.seen = seen = next;
    }
    if (seen[seed] === this.generation) bail();
    seen[seed] = this.generation;
  }

  /**
   * health_metrics at pos, as columns. The hot loop keeps the cursor in a local and handles the
   * forms esper writes (fixstr seed keys, fixmaps, float32/float64/fixint values) inline; any
   * other form goes through the cursor's general readers.
   *
   * Metric names are predicted: the j-th name of a seed is almost always the j-th of the seed
   * before. A predicted key is confirmed by comparing its bytes as they were first seen for that
   * column, header included, a word at a time; only an exact match takes the fast path, so a
   * name written in another str form, or another name, goes the general way and is read in full.
   */
  private healthColumns(): Pick<TelemetryFrame, "seeds" | "columns" | "values"> {
    const c = this.c;
    const rows = c.mapHeader();
    const d = c.data;
    const dv = c.view;
    const end = d.length;
    if (rows > end - c.pos || rows > MAX_ENTRIES) bail();
    const expected = this.expectedColumns;
    const block = new Float64Array(rows * (expected + 1)).fill(Number.NaN);
    const seeds = block.subarray(0, rows);
    const names: string[] = [];
    const columns: Column[] = [];
    const valuesOfColumn: Float64Array[] = [];
    const index = new Map<string, number>();
    /** Column of the j-th metric of the previous seed: this seed's j-th is very likely the same. */
    const order: number[] = [];
    this.newReport();
    let p = c.pos;
    for (let r = 0; r < rows; r++) {
      let b = p < end ? d[p]! : bail();
      let seed = 0;
      if ((b & 0xe0) === 0xa0) {
        const n = b & 0x1f;
        if (n === 0 || n > 8 || p + 1 + n > end || (n > 1 && d[p + 1] === 0x30)) bail();
        for (let i = 1; i <= n; i++) {
          const digit = d[p + i]! - 0x30;
          if (digit < 0 || digit > 9) bail();
          seed = seed * 10 + digit;
        }
        p += 1 + n;
      } else {
        c.pos = p;
        seed = c.seedKey();
        p = c.pos;
      }
      this.markSeen(seed);
      seeds[r] = seed;

      b = p < end ? d[p]! : bail();
      let m: number;
      if ((b & 0xf0) === 0x80) {
        m = b & 0x0f;
        p++;
      } else {
        c.pos = p;
        m = c.mapHeader();
        p = c.pos;
        if (m > MAX_ENTRIES) bail();
      }
      for (let j = 0; j < m; j++) {
        // Fast path: the predicted key, byte for byte, and a value in a form esper writes; with
        // room for the key and a float64 after it, no other bounds check is needed.
        if (j < order.length) {
          const col = columns[order[j]!]!;
          const k = col.keyLength;
          const words = col.keyWords;
          const last = words.length - 1;
          if (last >= 0 && p + k + 9 <= end) {
            let w = 0;
            while (w < last && dv.getInt32(p + 4 * w, true) === words[w]) w++;
            if (w === last && dv.getInt32(p + k - 4, true) === words[last]) {
              const at = p + k;
              const t = d[at]!;
              if (t === 0xca) {
                col.values[r] = dv.getFloat32(at + 1);
                p = at + 5;
                continue;
              }
              if (t < 0x80) {
                col.values[r] = t;
                p = at + 1;
                continue;
              }
              if (t === 0xcb) {
                col.values[r] = dv.getFloat64(at + 1);
                p = at + 9;
                continue;
              }
            }
          }
        }
        const keyAt = p;
        b = p < end ? d[p]! : bail();
        let n: number;
        if ((b & 0xe0) === 0xa0) {
          n = b & 0x1f;
          p++;
        } else {
          c.pos = p;
          n = c.strHeader();
          p = c.pos;
          if (n > MAX_STRING_LENGTH) bail();
        }
        if (p + n > end) bail();
        let col = j < order.length ? order[j]! : -1;
        if (col >= 0) {
          const bytes = columns[col]!.name;
          if (bytes.length !== n) col = -1;
          else {
            for (let k = 0; k < n; k++) {
              if (d[p + k] !== bytes[k]) {
                col = -1;
                break;
              }
            }
          }
        }
        if (col < 0) {
          let s = "";
          for (let k = 0; k < n; k++) {
            const ch = d[p + k]!;
            if (ch > 0x7f) bail();
            s += String.fromCharCode(ch);
          }
          if (s === PROTO) bail();
          col = index.get(s) ?? -1;
          if (col < 0) {
            col = names.length;
            index.set(s, col);
            names.push(s);
            const key = d.slice(keyAt, p + n);
            const values = col < expected ? block.subarray((col + 1) * rows, (col + 2) * rows) : new Float64Array(rows).fill(Number.NaN);
            columns.push({ name: d.slice(p, p + n), keyWords: keyWordsOf(key), keyLength: key.length, values });
            valuesOfColumn.push(values);
          }
          order[j] = col;
        }
        p += n;
        b = p < end ? d[p]! : bail();
        let v: number;
        if (b === 0xca) {
          if (p + 5 > end) bail();
          v = dv.getFloat32(p + 1);
          p += 5;
        } else if (b < 0x80) {
          v = b;
          p++;
        } else if (b === 0xcb) {
          if (p + 9 > end) bail();
          v = dv.getFloat64(p + 1);
          p += 9;
        } else {
          c.pos = p;
          v = c.number();
          p = c.pos;
        }
        columns[col]!.values[r] = v;
      }
    }
    c.pos = p;
    if (rows > 0) this.expectedColumns = Math.min(64, names.length);
    return { seeds, columns: names, values: valuesOfColumn };
  }
}
