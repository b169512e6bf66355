/**
 * A growable buffer that writes the few msgpack forms telemetry needs, by hand: the telemetry
 * writer's fast path (telemetry-writer.ts, telemetry-record-writer.ts).
 *
 * Why not msgpackr: a window of seed metrics is a map of maps whose keys repeat on every seed.
 * Packing it as JS objects means building one object per seed first (~2 µs per seed of 7
 * metrics, measured) and writing every number as a float64. Written directly from the data
 * plane's rows, a seed costs ~0.1-0.2 µs, metric names are copied from pre-encoded bytes, and a
 * value goes out in the smallest form that reads back exactly (fixint, float32, else float64):
 * telemetry values come from a Float32Array, so float32 loses nothing and saves 4 bytes a value.
 * The output is plain msgpack; any reader decodes it (docs/protocol.md `enc: msgpack`).
 */

const encoder = new TextEncoder();

/** Not zero-filled and never from Node's shared pool: the writer overwrites every byte it hands out. */
const uninitialized = (size: number): Uint8Array => Buffer.allocUnsafeSlow(size);

export class MsgpackWriter {
  bytes: Uint8Array;
  view: DataView;
  pos = 0;

  /** Writes into `buffer` when given one (its bytes are overwritten), else into a new one of that many bytes. */
  constructor(initial: number | Uint8Array = 64 * 1024) {
    this.bytes = typeof initial === "number" ? uninitialized(initial) : initial;
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  reset(): void {
    this.pos = 0;
  }

  /** Room for `n` more bytes. */
  ensure(n: number): void {
    if (this.pos + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = uninitialized(size);
    next.set(this.bytes.subarray(0, this.pos));
    this.bytes = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }

  /** A copy of bytes [from, pos): what was written since `from`. Not zero-filled first: a block is ~100 KB. */
  copy(from = 0): Uint8Array {
    const out = Buffer.allocUnsafe(this.pos - from);
    out.set(this.bytes.subarray(from, this.pos));
    return out;
  }

  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.bytes.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** A pre-encoded key (encodeKey). */
  key(key: EncodedKey): void {
    this.ensure(key.words.length * 4);
    this.pos = putKey(this.view, this.pos, key);
  }

  mapHeader(n: number): void {
    this.header(n, 0x80, 0xde, 0xdf);
  }

  arrayHeader(n: number): void {
    this.header(n, 0x90, 0xdc, 0xdd);
  }

  /** A map or array header: the fix form below 16, else a 16- or 32-bit count after its type byte. */
  private header(n: number, fix: number, of16: number, of32: number): void {
    this.ensure(5);
    if (n < 16) this.bytes[this.pos++] = fix | n;
    else if (n < 0x10000) {
      this.bytes[this.pos] = of16;
      this.view.setUint16(this.pos + 1, n);
      this.pos += 3;
    } else {
      this.bytes[this.pos] = of32;
      this.view.setUint32(this.pos + 1, n);
      this.pos += 5;
    }
  }

  /**
   * A map32 (or array32) header whose count is filled in later with `patch32`: the count of
   * seeds is known only once the batch is cut. A 32-bit header for a small count is valid msgpack.
   */
  header32(marker: 0xdf | 0xdd): number {
    this.ensure(5);
    const at = this.pos;
    this.bytes[at] = marker;
    this.pos += 5;
    return at;
  }

  patch32(at: number, n: number): void {
    this.view.setUint32(at + 1, n);
  }

  nil(): void {
    this.ensure(1);
    this.bytes[this.pos++] = 0xc0;
  }

  str(s: string): void {
    const n = s.length;
    // ASCII (every key and id telemetry writes) goes byte by byte; anything else through TextEncoder.
    let ascii = n < 0x10000;
    for (let i = 0; ascii && i < n; i++) if (s.charCodeAt(i) > 0x7f) ascii = false;
    if (!ascii) {
      const bytes = encoder.encode(s);
      this.strHeader(bytes.length);
      this.raw(bytes);
      return;
    }
    this.strHeader(n);
    this.ensure(n);
    const out = this.bytes;
    let p = this.pos;
    for (let i = 0; i < n; i++) out[p++] = s.charCodeAt(i);
    this.pos = p;
  }

  private strHeader(n: number): void {
    this.ensure(5);
    if (n < 32) this.bytes[this.pos++] = 0xa0 | n;
    else if (n < 0x100) {
      this.bytes[this.pos++] = 0xd9;
      this.bytes[this.pos++] = n;
    } else if (n < 0x10000) {
      this.bytes[this.pos] = 0xda;
      this.view.setUint16(this.pos + 1, n);
      this.pos += 3;
    } else {
      this.bytes[this.pos] = 0xdb;
      this.view.setUint32(this.pos + 1, n);
      this.pos += 5;
    }
  }

  /** A non-negative integer below 2^53 as a decimal string: a health_metrics seed key. */
  decimalKey(n: number): void {
    if (n > MAX_DECIMAL_KEY) {
      this.str(String(n));
      return;
    }
    this.ensure(11);
    this.pos = putDecimalKey(this.bytes, this.pos, n);
  }

  /** The smallest exact form (putNumber). */
  number(v: number): void {
    this.ensure(9);
    this.pos = putNumber(this.bytes, this.view, this.pos, v);
  }

  float64(v: number): void {
    this.ensure(9);
    this.bytes[this.pos] = 0xcb;
    this.view.setFloat64(this.pos + 1, v);
    this.pos += 9;
  }
}

/** Largest seed id putDecimalKey writes; larger ones go through `str`. */
export const MAX_DECIMAL_KEY = 0x7fffffff;

/**
 * A non-negative integer up to MAX_DECIMAL_KEY as a msgpack fixstr of its decimal digits. Needs
 * 11 bytes of room at `p`; returns the position after it.
 */
export const putDecimalKey = (out: Uint8Array, p: number, n: number): number => {
  const digits = n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10000 ? 4 : n < 100000 ? 5 : n < 1000000 ? 6 : n < 10000000 ? 7 : n < 100000000 ? 8 : n < 1000000000 ? 9 : 10;
  out[p] = 0xa0 | digits;
  let q = p + digits;
  for (let x = n; ; ) {
    const d = (x / 10) | 0;
    out[q--] = 0x30 + (x - d * 10);
    if (d === 0) break;
    x = d;
  }
  return p + digits + 1;
};

/**
 * The smallest exact form of a number: fixint/uint32/int32 for integers (not -0), float32 when
 * it holds the value exactly (every value from a Float32Array, and NaN), else float64. Needs 9
 * bytes of room at `p`; returns the position after it.
 */
export const putNumber = (out: Uint8Array, view: DataView, p: number, v: number): number => {
  if (Number.isInteger(v) && (v !== 0 || 1 / v > 0)) {
    if (v >= 0) {
      if (v < 128) {
        out[p] = v;
        return p + 1;
      }
      if (v <= 0xffffffff) {
        out[p] = 0xce;
        view.setUint32(p + 1, v);
        return p + 5;
      }
    } else {
      if (v >= -32) {
        out[p] = v & 0xff;
        return p + 1;
      }
      if (v >= -0x80000000) {
        out[p] = 0xd2;
        view.setInt32(p + 1, v);
        return p + 5;
      }
    }
  }
  if (Math.fround(v) === v || v !== v) {
    out[p] = 0xca;
    view.setFloat32(p + 1, v);
    return p + 5;
  }
  out[p] = 0xcb;
  view.setFloat64(p + 1, v);
  return p + 9;
};

/**
 * A string as a complete msgpack str (header and bytes), for keys written again and again;
 * `words` holds its bytes as big-endian int32s, so writing one costs a few 4-byte stores.
 */
export interface EncodedKey {
  readonly bytes: Uint8Array;
  readonly words: Int32Array;
}

export const encodeKey = (key: string): EncodedKey => {
  const w = new MsgpackWriter(key.length * 3 + 5);
  w.str(key);
  const bytes = w.copy();
  const padded = new Uint8Array(Math.ceil(bytes.length / 4) * 4);
  padded.set(bytes);
  const view = new DataView(padded.buffer);
  const words = new Int32Array(padded.length / 4);
  for (let i = 0; i < words.length; i++) words[i] = view.getInt32(i * 4);
  return { bytes, words };
};

/**
 * Writes a key at `p` in whole words: the last word may spill up to 3 bytes past the key, which
 * the next write overwrites, so the buffer needs `words.length * 4` bytes of room, not
 * `bytes.length`. Returns the position after the key.
 */
export const putKey = (view: DataView, p: number, key: EncodedKey): number => {
  const words = key.words;
  for (let i = 0; i < words.length; i++) view.setInt32(p + 4 * i, words[i]!);
  return p + key.bytes.length;
};
