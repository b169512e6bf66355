/** The protocol's size limits and the numbers docs/protocol.md fixes, written down once. */

/** Largest `data` field a reader accepts, checked on the raw bytes before any decoding. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1_048_576;

/**
 * Largest a deflated `data` may grow when inflated. Bounds a zlib bomb: 1 MiB of zeros deflates
 * to about 1 KiB. Telemetry compresses well (5-10x), so 16x the message limit leaves headroom.
 */
export const DEFAULT_MAX_INFLATED_BYTES = 16 * DEFAULT_MAX_MESSAGE_BYTES;

/** Deliveries after which an entry goes to the dead-letter stream (docs/protocol.md "Consumer groups"). */
export const DEFAULT_MAX_DELIVERIES = 5;

export const MAX_LAYER_ID_LENGTH = 64;
export const MAX_NAMESPACE_LENGTH = 32;
export const MAX_MESSAGE_ID_LENGTH = 128;

/** Longest `source` a message may name: a layer keeps a rate counter per source, so it is bounded. */
export const MAX_SOURCE_LENGTH = 256;

/** Most commands one BatchCommand may hold; a longer batch is refused `invalid_message` before it is looked at. */
export const MAX_BATCH_COMMANDS = 1_000;

/**
 * Bounds on a decoded message, checked before its schema: how deeply maps and lists may nest,
 * how long a string and how many entries a map or list may have, and how many keys the free-form
 * maps of a command (`parameters`, `metadata`) may have. Telemetry needs the long maps (a report
 * carries one entry per seed); nothing needs the depth.
 */
export const DECODE_LIMITS = {
  maxDepth: 32,
  maxStringLength: 65_536,
  maxEntries: 65_536,
  maxCommandMapKeys: 256,
} as const;

/** Fields of an entry besides `data` (type, enc, sig, and whatever a writer adds) may add up to this many bytes. */
export const MAX_ENTRY_OVERHEAD_BYTES = 4_096;
