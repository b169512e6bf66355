import { Result } from "effect";
import { decodeBody } from "../protocol/codec.ts";
import { decodeMessage } from "../protocol/decode-message.ts";
import type { LayerHealthReport } from "../protocol/messages.ts";
import { frameEnvelope, type TelemetryFrame } from "./frame.ts";

/**
 * The fast path of the telemetry reader: a msgpack LayerHealthReport (or a TelemetryBatch of
 * them) read straight from its bytes into frames, without building an object per seed.
 *
 * Parsing health_metrics with msgpackr and the protocol decoder costs ~3 µs a seed of 7.75
 * metrics (an object per seed; measured on the 2-core dev box); walking the bytes and writing
 * numbers into columns costs ~0.3 µs. Metric
 * names are matched byte for byte against the names of the previous seed, which lists them in
 * the same order almost always.
 *
 * It accepts exactly what the Schema path accepts, or steps aside: anything it does not fully
 * understand (a nil or string where a number belongs, a non-ASCII or `__proto__` metric name, a
 * seed id over 2^24 or seen twice, an unknown msgpack form, trailing bytes, ...) returns
 * undefined, and the caller decodes the entry the slow way, which accepts it or says why not.
 * The envelope (everything but health_metrics) goes through the protocol's own decoder.
 */

let data: Uint8Array = new Uint8Array(0);
let view: DataView = new DataView(data.buffer);
let pos = 0;

/** Thrown to step aside; caught at the entry point. */
const BAIL = Symbol("bail");
const bail = (): never => {
  throw BAIL;
};

const u8 = (): number => {
  if (pos >= data.length) bail();
  return data[pos++]!;
};
const need = (n: number): void => {
  if (pos + n > data.length) bail();
};
const u16 = (): number => {
  need(2);
  const v = view.getUint16(pos);
  pos += 2;
  return v;
};
const u32 = (): number => {
  need(4);
  const v = view.getUint32(pos);
  pos += 4;
  return v;
};

/** A map header's count, or bail. */
const mapHeader = (): number => {
  const b = u8();
  if ((b & 0xf0) === 0x80) return b & 0x0f;
  if (b === 0xde) return u16();
  if (b === 0xdf) return u32();
  return bail();
};

/** A str header's byte length (pos then at the first byte), or bail. */
const strHeader = (): number => {
  const b = u8();
  let n: number;
  if ((b & 0xe0) === 0xa0) n = b & 0x1f;
  else if (b === 0xd9) n = u8();
  else if (b === 0xda) n = u16();
  else if (b === 0xdb) n = u32();
  else return bail();
  need(n);
  return n;
};

/** An ASCII str as a JS string, or bail. */
const asciiString = (): string => {
  const n = strHeader();
  let s = "";
  for (let i = 0; i < n; i++) {
    const c = data[pos + i]!;
    if (c > 0x7f) bail();
    s += String.fromCharCode(c);
  }
  pos += n;
  return s;
};

/** Moves pos past one value of any msgpack form. */
const skip = (): void => {
  let pending = 1;
  while (pending > 0) {
    pending--;
    const b = u8();
    if (b < 0x80 || b >= 0xe0) continue;
    if (b < 0x90) pending += 2 * (b & 0x0f);
    else if (b < 0xa0) pending += b & 0x0f;
    else if (b < 0xc0) pos += b & 0x1f;
    else
      switch (b) {
        case 0xc0:
        case 0xc2:
        case 0xc3:
          break;
        case 0xc4:
        case 0xd9:
          {
            const n = u8();
            pos += n;
          }
          break;
        case 0xc5:
        case 0xda:
          {
            const n = u16();
            pos += n;
          }
          break;
        case 0xc6:
        case 0xdb:
          {
            const n = u32();
            pos += n;
          }
          break;
        case 0xc7:
          {
            const n = u8();
            pos += n + 1;
          }
          break;
        case 0xc8:
          {
            const n = u16();
            pos += n + 1;
          }
          break;
        case 0xc9:
          {
            const n = u32();
            pos += n + 1;
          }
          break;
        case 0xca:
          pos += 4;
          break;
        case 0xcb:
          pos += 8;
          break;
        case 0xcc:
        case 0xd0:
          pos += 1;
          break;
        case 0xcd:
        case 0xd1:
          pos += 2;
          break;
        case 0xce:
        case 0xd2:
          pos += 4;
          break;
        case 0xcf:
        case 0xd3:
          pos += 8;
          break;
        case 0xd4:
          pos += 2;
          break;
        case 0xd5:
          pos += 3;
          break;
        case 0xd6:
          pos += 5;
          break;
        case 0xd7:
          pos += 9;
          break;
        case 0xd8:
          pos += 17;
          break;
        case 0xdc:
          pending += u16();
          break;
        case 0xdd:
          pending += u32();
          break;
        case 0xde:
          pending += 2 * u16();
          break;
        case 0xdf:
          pending += 2 * u32();
          break;
        default:
          bail();
      }
    if (pos > data.length) bail();
  }
};

/** A number in any msgpack number form, exactly as msgpackr reads it; bail for anything else (a bigint too). */
const number = (): number => {
  const b = u8();
  if (b < 0x80) return b;
  if (b >= 0xe0) return b - 0x100;
  let v: number;
  switch (b) {
    case 0xca:
      need(4);
      v = view.getFloat32(pos);
      pos += 4;
      return v;
    case 0xcb:
      need(8);
      v = view.getFloat64(pos);
      pos += 8;
      return v;
    case 0xcc:
      return u8();
    case 0xcd:
      return u16();
    case 0xce:
      return u32();
    case 0xd0:
      need(1);
      return view.getInt8(pos++);
    case 0xd1:
      need(2);
      v = view.getInt16(pos);
      pos += 2;
      return v;
    case 0xd2:
      need(4);
      v = view.getInt32(pos);
      pos += 4;
      return v;
    case 0xcf: {
      need(8);
      const hi = view.getUint32(pos);
      v = hi * 0x100000000 + view.getUint32(pos + 4);
      pos += 8;
      if (hi >= 0x200000) bail();
      return v;
    }
    case 0xd3: {
      need(8);
      const hi = view.getInt32(pos);
      v = hi * 0x100000000 + view.getUint32(pos + 4);
      pos += 8;
      if (!Number.isSafeInteger(v)) bail();
      return v;
    }
    default:
      return bail();
  }
};

// Seeds seen in the report being read: stamp[seed] === generation. Seed ids past MAX_STAMPED step aside.
const MAX_STAMPED = 1 << 24;
let stamp = new Uint32Array(1024);
let generation = 0;

/** A seed key: a str of decimal digits without leading zero (or a uint, which msgpackr turns into one). */
const seedKey = (): number => {
  const b = data[pos];
  if (b !== undefined && (b < 0x80 || b === 0xcc || b === 0xcd || b === 0xce)) return number();
  const n = strHeader();
  if (n === 0 || n > 8 || (n > 1 && data[pos] === 0x30)) bail();
  let v = 0;
  for (let i = 0; i < n; i++) {
    const d = data[pos + i]! - 0x30;
    if (d < 0 || d > 9) bail();
    v = v * 10 + d;
  }
  pos += n;
  return v;
};

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

/**
 * Columns of one report come out of one NaN-filled block, sized for as many columns as the
 * last report had: one allocation per report instead of one per column.
 */
let expectedColumns = 8;

/**
 * health_metrics at pos, as columns. The hot loop keeps the cursor in a local and handles the
 * forms esper writes (fixstr seed keys, fixmaps, float32/float64/fixint values) inline; any
 * other form goes through the general readers above.
 *
 * Metric names are predicted: the j-th name of a seed is almost always the j-th of the seed
 * before. A predicted key is confirmed by comparing its bytes as they were first seen for that
 * column, header included, a word at a time; only an exact match takes the fast path, so a
 * name written in another str form, or another name, goes the general way and is read in full.
 */
const healthColumns = (): Pick<TelemetryFrame, "seeds" | "columns" | "values"> => {
  const rows = mapHeader();
  if (rows > data.length - pos) bail();
  const d = data;
  const dv = view;
  const end = d.length;
  const block = new Float64Array(rows * (expectedColumns + 1)).fill(Number.NaN);
  const seeds = block.subarray(0, rows);
  const names: string[] = [];
  const columns: Column[] = [];
  const valuesOfColumn: Float64Array[] = [];
  const index = new Map<string, number>();
  /** Column of the j-th metric of the previous seed: this seed's j-th is very likely the same. */
  const order: number[] = [];
  if (++generation === 0xffffffff) {
    stamp.fill(0);
    generation = 1;
  }
  let p = pos;
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
      pos = p;
      seed = seedKey();
      p = pos;
    }
    if (seed >= MAX_STAMPED) bail();
    if (seed >= stamp.length) {
      const next = new Uint32Array(Math.min(MAX_STAMPED, Math.max(seed + 1, stamp.length * 2)));
      next.set(stamp);
      stamp = next;
    }
    if (stamp[seed] === generation) bail();
    stamp[seed] = generation;
    seeds[r] = seed;

    b = p < end ? d[p]! : bail();
    let m: number;
    if ((b & 0xf0) === 0x80) {
      m = b & 0x0f;
      p++;
    } else {
      pos = p;
      m = mapHeader();
      p = pos;
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
        pos = p;
        n = strHeader();
        p = pos;
      }
      if (p + n > end) bail();
      let c = j < order.length ? order[j]! : -1;
      if (c >= 0) {
        const bytes = columns[c]!.name;
        if (bytes.length !== n) c = -1;
        else {
          for (let k = 0; k < n; k++) {
            if (d[p + k] !== bytes[k]) {
              c = -1;
              break;
            }
          }
        }
      }
      if (c < 0) {
        let s = "";
        for (let k = 0; k < n; k++) {
          const ch = d[p + k]!;
          if (ch > 0x7f) bail();
          s += String.fromCharCode(ch);
        }
        if (s === PROTO) bail();
        c = index.get(s) ?? -1;
        if (c < 0) {
          c = names.length;
          index.set(s, c);
          names.push(s);
          const key = d.slice(keyAt, p + n);
          const values = c < expectedColumns ? block.subarray((c + 1) * rows, (c + 2) * rows) : new Float64Array(rows).fill(Number.NaN);
          columns.push({ name: d.slice(p, p + n), keyWords: keyWordsOf(key), keyLength: key.length, values });
          valuesOfColumn.push(values);
        }
        order[j] = c;
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
        pos = p;
        v = number();
        p = pos;
      }
      columns[c]!.values[r] = v;
    }
  }
  pos = p;
  if (rows > 0) expectedColumns = Math.min(64, names.length);
  return { seeds, columns: names, values: valuesOfColumn };
};

interface MapScan {
  /** Where the special field's value starts, or -1 when absent. */
  readonly at: number;
  /** The map without the special field, re-encoded for msgpackr: the envelope. */
  readonly envelope: Uint8Array;
  /** The special field is the map's last: its value ends where the map ends, and pos is left at it, unread. */
  readonly last: boolean;
}

/**
 * Reads a map at pos, noting where `special` is; every other field is copied out as the
 * envelope. esper writes the special field last, and then it is not walked twice: pos stays at
 * its value for the caller to read.
 */
const scanMap = (special: string): MapScan => {
  const start = pos;
  const n = mapHeader();
  const headerEnd = pos;
  let at = -1;
  let pairStart = -1;
  let pairEnd = -1;
  for (let i = 0; i < n; i++) {
    const keyAt = pos;
    const key = asciiString();
    if (key === special) {
      if (at >= 0) bail();
      pairStart = keyAt;
      at = pos;
      if (i === n - 1) break;
      skip();
      pairEnd = pos;
    } else skip();
  }
  if (at < 0) return { at, envelope: data.subarray(start, pos), last: false };
  const last = pairEnd < 0;
  const end = last ? at : pos;
  if (last) pairEnd = at;
  const envelope = new Uint8Array(5 + (pairStart - headerEnd) + (last ? 0 : end - pairEnd));
  envelope[0] = 0xdf;
  new DataView(envelope.buffer).setUint32(1, n - 1);
  envelope.set(data.subarray(headerEnd, pairStart), 5);
  if (!last) envelope.set(data.subarray(pairEnd, end), 5 + (pairStart - headerEnd));
  return { at, envelope, last };
};

/** A LayerHealthReport at pos: its envelope through the protocol decoder, its seeds through healthColumns. */
const report = (typeField: string | undefined): TelemetryFrame => {
  const { at, envelope, last } = scanMap("health_metrics");
  const after = pos;
  const parsed = decodeBody(envelope, "msgpack");
  // Inside a batch the report has no entry type of its own: it must be a LayerHealthReport.
  const decoded = decodeMessage(parsed, typeField ?? "LayerHealthReport");
  if (Result.isFailure(decoded) || decoded.success.message_type !== "LayerHealthReport") return bail();
  const r: LayerHealthReport = decoded.success;
  if (at < 0) return { ...frameEnvelope(r), seeds: new Float64Array(0), columns: [], values: [] };
  pos = at;
  const frame = { ...frameEnvelope(r), ...healthColumns() };
  // health_metrics was the last field: the map ends where it does.
  if (!last) pos = after;
  return frame;
};

const batch = (): TelemetryFrame[] => {
  const { at, envelope, last } = scanMap("messages");
  if (at < 0) bail();
  const after = pos;
  const parsed = decodeBody(envelope, "msgpack") as Record<string, unknown>;
  parsed.messages = [];
  const decoded = decodeMessage(parsed, "TelemetryBatch");
  if (Result.isFailure(decoded)) return bail();
  pos = at;
  const b = u8();
  let n: number;
  if ((b & 0xf0) === 0x90) n = b & 0x0f;
  else if (b === 0xdc) n = u16();
  else if (b === 0xdd) n = u32();
  else return bail();
  if (n > data.length - pos) bail();
  const frames: TelemetryFrame[] = [];
  for (let i = 0; i < n; i++) frames.push(report(undefined));
  if (!last) pos = after;
  return frames;
};

/**
 * The frames of a msgpack `data` whose entry `type` is LayerHealthReport or TelemetryBatch, or
 * undefined when the Schema path must decide. Never throws.
 */
export const scanTelemetry = (bytes: Uint8Array, type: string): TelemetryFrame[] | undefined => {
  if (type !== "LayerHealthReport" && type !== "TelemetryBatch") return undefined;
  data = bytes;
  view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  pos = 0;
  try {
    const frames = type === "LayerHealthReport" ? [report(type)] : batch();
    return pos === bytes.length ? frames : undefined;
  } catch {
    // BAIL, decodeBody's BodyError (the envelope is not msgpack), a DataView read past the end:
    // whatever it was, the slow path reads the entry again and says why.
    return undefined;
  } finally {
    data = EMPTY;
    view = new DataView(EMPTY.buffer);
  }
};

const EMPTY = new Uint8Array(0);
