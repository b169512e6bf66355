import type { Entry, EntryFields, HashValue } from "./bus.ts";

/**
 * Conversions between bus entries and what ioredis sends and receives with its Buffer command
 * variants: `data` stays the Buffer Redis gave (a Uint8Array, no copy), other fields become strings.
 */

export type RawEntry = [id: Buffer, fields: Buffer[] | null];

const asBuffer = (value: HashValue): Buffer | string => {
  if (typeof value === "string" || Buffer.isBuffer(value)) return value;
  const bytes = value instanceof Uint8Array ? value : value.encode();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
};

/** Field-value pairs for XADD/HSET; a plain Uint8Array is wrapped (not copied), as ioredis only sends Buffers as bytes. */
export const fieldArgs = (fields: Readonly<Record<string, HashValue>> | ReadonlyMap<string, HashValue>): (Buffer | string)[] => {
  const args: (Buffer | string)[] = [];
  if (fields instanceof Map) for (const [name, value] of fields) args.push(name, asBuffer(value));
  else for (const name in fields) args.push(name, asBuffer((fields as Readonly<Record<string, HashValue>>)[name]!));
  return args;
};

/** XADD's arguments after the key; `maxLen` null: no MAXLEN (the stream is trimmed otherwise, see Bus.trimDelivered). */
export const xaddArgs = (fields: EntryFields, maxLen: number | null): (Buffer | string)[] =>
  maxLen === null ? ["*", ...fieldArgs(fields)] : ["MAXLEN", "~", String(maxLen), "*", ...fieldArgs(fields)];

export const toFields = (raw: readonly Buffer[]): EntryFields => {
  const fields: Record<string, Uint8Array | string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString("utf8");
    fields[name] = name === "data" ? raw[i + 1]! : raw[i + 1]!.toString("utf8");
  }
  return fields as unknown as EntryFields;
};

/** Entries whose fields are nil (trimmed or deleted while pending) are left out; see `goneIds`. */
export const toEntries = (stream: string, raw: readonly RawEntry[] | null | undefined, deliveries: number): Entry[] => {
  const out: Entry[] = [];
  if (raw === null || raw === undefined) return out;
  for (const [id, fields] of raw) {
    if (fields !== null) out.push({ stream, id: id.toString("latin1"), fields: toFields(fields), deliveries });
  }
  return out;
};

/** The entries of a READ_GROUP or CLAIM script reply: `{ id, deliveries, size (-1 = whole), fields }` each. */
export const scriptEntries = (stream: string, rows: readonly unknown[]): Entry[] =>
  rows.map((row) => {
    const [id, deliveries, size, fields] = row as [Buffer, number, number, Buffer[]];
    const entry = { stream, id: id.toString("latin1"), fields: toFields(fields), deliveries: Number(deliveries) };
    return Number(size) >= 0 ? { ...entry, fields: { data: new Uint8Array(0), type: (entry.fields.type as string | undefined) ?? "" }, oversize: Number(size) } : entry;
  });

/** XREAD/XREADGROUP reply for one stream: `[[key, entries]]` or null. */
export const firstStreamEntries = (reply: unknown): RawEntry[] => {
  if (!Array.isArray(reply) || reply.length === 0) return [];
  const [, entries] = reply[0] as [Buffer, RawEntry[]];
  return entries ?? [];
};

/** Extended XPENDING reply rows. */
export type PendingRow = [id: string, consumer: string, idleMs: number, deliveries: number];
