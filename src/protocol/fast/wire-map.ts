/** What the hand-written fast decoders (command-decoder.ts, event-decoders.ts) share about parsed input. */

export type WireMap = Record<string, unknown>;

/** A plain map as a codec makes it: anything else (a Map, a Uint8Array, a class) is left to the Schema. */
export const isPlainMap = (u: unknown): u is WireMap => {
  if (typeof u !== "object" || u === null) return false;
  const proto = Object.getPrototypeOf(u);
  return proto === Object.prototype || proto === null;
};

/** Absent and null mean the same on the wire: the field's default. */
export const absent = (u: unknown): u is null | undefined => u === undefined || u === null;
