import { timingSafeEqual } from "node:crypto";
import { inflateSync } from "node:zlib";
import { Result } from "effect";
import { decodeEntry, signEntry, type DecodeOptions } from "../protocol/entry.ts";
import { fastPaths } from "../protocol/fast/switch.ts";
import { TelemetryScanner } from "../protocol/fast/telemetry-scanner.ts";
import { DEFAULT_MAX_INFLATED_BYTES, DEFAULT_MAX_MESSAGE_BYTES } from "../protocol/limits.ts";
import type { SeedMetricsSnapshot } from "../protocol/messages.ts";
import { ProtocolError } from "../protocol/protocol-error.ts";
import { frameOfReport, type TelemetryFrame } from "./frame.ts";

/**
 * A telemetry entry to what Tamiyo reads: frames (LayerHealthReports, health_metrics as
 * columns) and SeedMetricsSnapshots. With fast paths on (protocol/fast/switch.ts), the entries
 * esper writes take the fast path (protocol/fast/telemetry-scanner.ts); anything else (JSON,
 * the reference format, snapshots, unusual msgpack), and every entry with fast paths off, takes
 * the protocol's decodeEntry, so a reader accepts every entry docs/protocol.md allows and refuses the
 * rest with the same code and message.
 */
export interface TelemetryContent {
  readonly frames: readonly TelemetryFrame[];
  readonly snapshots: readonly SeedMetricsSnapshot[];
}

const NO_SNAPSHOTS: readonly SeedMetricsSnapshot[] = [];

const inflate = (data: Uint8Array, maxOutputLength: number): Uint8Array | undefined => {
  try {
    const chunkSize = Math.min(Math.max(data.byteLength * 4, 16 * 1024), 1024 * 1024);
    return inflateSync(data, { maxOutputLength, chunkSize });
  } catch {
    return undefined;
  }
};

const HEX_SIG = /^[0-9a-fA-F]{64}$/;

/** Same check as decodeEntry's; false sends the entry down the slow path, which says what is wrong. */
const signatureAllows = (stream: string, type: string, data: Uint8Array, sig: unknown, options: DecodeOptions): boolean => {
  if (options.hmacKey === undefined) return true;
  const text = typeof sig === "string" ? sig : sig instanceof Uint8Array ? Buffer.from(sig).toString("latin1") : undefined;
  if (text === undefined) return options.requireSig !== true;
  if (!HEX_SIG.test(text)) return false;
  return timingSafeEqual(Buffer.from(text, "hex"), Buffer.from(signEntry(options.hmacKey, stream, type, data), "hex"));
};

/**
 * Never throws. `scanner`: one to read with, kept by a reader from entry to entry (its scratch
 * space); default a new one when the entry takes the fast path.
 */
export const decodeTelemetryEntry = (
  stream: string,
  fields: Readonly<Record<string, unknown>>,
  options: DecodeOptions = {},
  scanner?: TelemetryScanner,
): Result.Result<TelemetryContent, ProtocolError> => {
  const { data, type, enc } = fields;
  if (
    fastPaths() &&
    data instanceof Uint8Array &&
    typeof type === "string" &&
    data.byteLength <= (options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES) &&
    (enc === "msgpack" || enc === "msgpack+deflate") &&
    signatureAllows(stream, type, data, fields.sig, options)
  ) {
    const body = enc === "msgpack" ? data : inflate(data, options.maxInflatedBytes ?? DEFAULT_MAX_INFLATED_BYTES);
    const frames = body === undefined ? undefined : (scanner ?? new TelemetryScanner()).scan(body, type);
    if (frames !== undefined) return Result.succeed({ frames, snapshots: NO_SNAPSHOTS });
  }
  const decoded = decodeEntry(stream, fields, options);
  if (Result.isFailure(decoded)) return Result.fail(decoded.failure);
  const m = decoded.success;
  switch (m.message_type) {
    case "LayerHealthReport":
      return Result.succeed({ frames: [frameOfReport(m)], snapshots: NO_SNAPSHOTS });
    case "SeedMetricsSnapshot":
      return Result.succeed({ frames: [], snapshots: [m] });
    case "TelemetryBatch": {
      const frames: TelemetryFrame[] = [];
      const snapshots: SeedMetricsSnapshot[] = [];
      for (const r of m.messages) {
        if (r.message_type === "LayerHealthReport") frames.push(frameOfReport(r));
        else snapshots.push(r);
      }
      return Result.succeed({ frames, snapshots });
    }
    default:
      return Result.fail(
        new ProtocolError({
          code: "invalid_message",
          message: `${m.message_type} is not telemetry; ${stream} carries LayerHealthReport, SeedMetricsSnapshot and TelemetryBatch`,
          partial: { message_type: m.message_type, message_id: m.message_id },
        }),
      );
  }
};
