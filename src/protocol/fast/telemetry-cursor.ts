/**
 * A cursor over the msgpack bytes of one telemetry entry, and the readers the telemetry scanner
 * (telemetry-scanner.ts) uses for everything but its hot loop. Each reader moves the cursor past
 * what it read, or bails: anything it does not fully understand sends the entry down the
 * general path.
 */

const EMPTY = new Uint8Array(0);

/** Thrown to step aside; caught where a scan starts. */
const BAIL = Symbol("bail");
export const bail = (): never => {
  throw BAIL;
};

export class TelemetryCursor {
  data: Uint8Array = EMPTY;
  view: DataView = new DataView(EMPTY.buffer);
  pos = 0;

  /** Points the cursor at the start of `bytes`. */
  reset(bytes: Uint8Array): void {
    this.data = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }

  /** Lets go of the bytes: a scanner kept for the next entry does not keep this one alive. */
  release(): void {
    this.data = EMPTY;
    this.view = new DataView(EMPTY.buffer);
  }

  u8(): number {
    if (this.pos >= this.data.length) bail();
    return this.data[this.pos++]!;
  }

  need(n: number): void {
    if (this.pos + n > this.data.length) bail();
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  /** A map header's count. */
  mapHeader(): number {
    return this.header(0x80, 0xde, 0xdf);
  }

  /** An array header's count. */
  arrayHeader(): number {
    return this.header(0x90, 0xdc, 0xdd);
  }

  /** The count of a map or array header: fix form (`fix` in the high nibble), or a 16- or 32-bit count after its type byte. */
  private header(fix: number, of16: number, of32: number): number {
    const b = this.u8();
    if ((b & 0xf0) === fix) return b & 0x0f;
    if (b === of16) return this.u16();
    if (b === of32) return this.u32();
    return bail();
  }

  /** A str header's byte length; pos is then at the first byte, and that many bytes are there. */
  strHeader(): number {
    const b = this.u8();
    let n: number;
    if ((b & 0xe0) === 0xa0) n = b & 0x1f;
    else if (b === 0xd9) n = this.u8();
    else if (b === 0xda) n = this.u16();
    else if (b === 0xdb) n = this.u32();
    else return bail();
    this.need(n);
    return n;
  }

  /** An ASCII str as a JS string. */
  asciiString(): string {
    const n = this.strHeader();
    const { data, pos } = this;
    let s = "";
    for (let i = 0; i < n; i++) {
      const c = data[pos + i]!;
      if (c > 0x7f) bail();
      s += String.fromCharCode(c);
    }
    this.pos += n;
    return s;
  }

  /** Moves past one value of any msgpack form. */
  skip(): void {
    let pending = 1;
    while (pending > 0) {
      pending--;
      const b = this.u8();
      if (b < 0x80 || b >= 0xe0) continue;
      if (b < 0x90) pending += 2 * (b & 0x0f);
      else if (b < 0xa0) pending += b & 0x0f;
      else if (b < 0xc0) this.pos += b & 0x1f;
      else pending += this.skipForm(b);
      if (this.pos > this.data.length) bail();
    }
  }

  /**
   * Moves past the rest of a value whose first byte, `b` (0xc0-0xdf), was read; returns how many
   * values it holds. A length is read before the cursor moves past what it counts.
   */
  private skipForm(b: number): number {
    let n: number;
    switch (b) {
      case 0xc0:
      case 0xc2:
      case 0xc3:
        return 0;
      case 0xc4:
      case 0xd9:
        n = this.u8();
        break;
      case 0xc5:
      case 0xda:
        n = this.u16();
        break;
      case 0xc6:
      case 0xdb:
        n = this.u32();
        break;
      case 0xc7:
        n = this.u8() + 1;
        break;
      case 0xc8:
        n = this.u16() + 1;
        break;
      case 0xc9:
        n = this.u32() + 1;
        break;
      case 0xcc:
      case 0xd0:
        n = 1;
        break;
      case 0xcd:
      case 0xd1:
      case 0xd4:
        n = 2;
        break;
      case 0xd5:
        n = 3;
        break;
      case 0xca:
      case 0xce:
      case 0xd2:
        n = 4;
        break;
      case 0xd6:
        n = 5;
        break;
      case 0xcb:
      case 0xcf:
      case 0xd3:
        n = 8;
        break;
      case 0xd7:
        n = 9;
        break;
      case 0xd8:
        n = 17;
        break;
      case 0xdc:
        return this.u16();
      case 0xdd:
        return this.u32();
      case 0xde:
        return 2 * this.u16();
      case 0xdf:
        return 2 * this.u32();
      default:
        return bail();
    }
    this.pos += n;
    return 0;
  }

  /** A number in any msgpack number form, exactly as msgpackr reads it; bails for anything else (a bigint too). */
  number(): number {
    const b = this.u8();
    if (b < 0x80) return b;
    if (b >= 0xe0) return b - 0x100;
    const view = this.view;
    let v: number;
    switch (b) {
      case 0xca:
        this.need(4);
        v = view.getFloat32(this.pos);
        this.pos += 4;
        return v;
      case 0xcb:
        this.need(8);
        v = view.getFloat64(this.pos);
        this.pos += 8;
        return v;
      case 0xcc:
        return this.u8();
      case 0xcd:
        return this.u16();
      case 0xce:
        return this.u32();
      case 0xd0:
        this.need(1);
        return view.getInt8(this.pos++);
      case 0xd1:
        this.need(2);
        v = view.getInt16(this.pos);
        this.pos += 2;
        return v;
      case 0xd2:
        this.need(4);
        v = view.getInt32(this.pos);
        this.pos += 4;
        return v;
      case 0xcf: {
        this.need(8);
        const hi = view.getUint32(this.pos);
        v = hi * 0x100000000 + view.getUint32(this.pos + 4);
        this.pos += 8;
        if (hi >= 0x200000) bail();
        return v;
      }
      case 0xd3: {
        this.need(8);
        const hi = view.getInt32(this.pos);
        v = hi * 0x100000000 + view.getUint32(this.pos + 4);
        this.pos += 8;
        if (!Number.isSafeInteger(v)) bail();
        return v;
      }
      default:
        return bail();
    }
  }

  /** A seed key: a str of decimal digits without leading zero (or a uint, which msgpackr turns into one). */
  seedKey(): number {
    const b = this.data[this.pos];
    if (b !== undefined && (b < 0x80 || b === 0xcc || b === 0xcd || b === 0xce)) return this.number();
    const n = this.strHeader();
    const { data, pos } = this;
    if (n === 0 || n > 8 || (n > 1 && data[pos] === 0x30)) bail();
    let v = 0;
    for (let i = 0; i < n; i++) {
      const d = data[pos + i]! - 0x30;
      if (d < 0 || d > 9) bail();
      v = v * 10 + d;
    }
    this.pos += n;
    return v;
  }
}
