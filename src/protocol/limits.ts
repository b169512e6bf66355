/** The protocol's size limits and the numbers PROTOCOL.md fixes, written down once. */

/** Largest `data` field a reader accepts, checked on the raw bytes before any decoding. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1_048_576;

/**
 * Largest a deflated `data` may grow when inflated. Bounds a zlib bomb: 1 MiB of zeros deflates
 * to about 1 KiB. Telemetry compresses well (5-10x), so 16x the message limit leaves headroom.
 */
export const DEFAULT_MAX_INFLATED_BYTES = 16 * DEFAULT_MAX_MESSAGE_BYTES;

/** Deliveries after which an entry goes to the dead-letter stream (PROTOCOL.md "Consumer groups"). */
export const DEFAULT_MAX_DELIVERIES = 5;

export const MAX_LAYER_ID_LENGTH = 64;
export const MAX_NAMESPACE_LENGTH = 32;
export const MAX_MESSAGE_ID_LENGTH = 128;
