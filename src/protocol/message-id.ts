import { randomFillSync } from "node:crypto";

/**
 * A new `message_id`: a random (version 4) UUID, as `crypto.randomUUID()` makes, but as one flat
 * string. Node builds randomUUID()'s string by concatenating 16 pieces, which V8 keeps as a tree
 * of about 20 cons cells (~600 bytes) until something flattens it; every message holds its id for
 * as long as a stream keeps the message, so in process those trees were a third of what each
 * command kept alive, and the garbage collector copied them on every scavenge.
 */

const HEX_CODES = Array.from({ length: 256 }, (_, byte) => {
  const h = byte.toString(16).padStart(2, "0");
  return [h.charCodeAt(0), h.charCodeAt(1)] as const;
});
/** Where each random byte's two hex digits go in the 36 characters. */
const POSITIONS = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/** Random bytes are drawn 4 KiB at a time (256 ids), as randomUUID's own cache does. */
const POOL_IDS = 256;
const pool = Buffer.alloc(16 * POOL_IDS);
let next = POOL_IDS;
const text = Buffer.from("00000000-0000-4000-8000-000000000000", "latin1");

export const newMessageId = (): string => {
  if (next === POOL_IDS) {
    randomFillSync(pool);
    next = 0;
  }
  const at = 16 * next++;
  for (let i = 0; i < 16; i++) {
    let byte = pool[at + i]!;
    if (i === 6) byte = (byte & 0x0f) | 0x40; // version 4
    else if (i === 8) byte = (byte & 0x3f) | 0x80; // RFC 4122 variant
    const [hi, lo] = HEX_CODES[byte]!;
    const p = POSITIONS[i]!;
    text[p] = hi;
    text[p + 1] = lo;
  }
  // latin1Slice makes the string natively, flat, in one piece.
  return (text as unknown as { latin1Slice: (start: number, end: number) => string }).latin1Slice(0, 36);
};
