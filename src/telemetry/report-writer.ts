import { randomUUID } from "node:crypto";
import { encodeBody } from "../protocol/codec.ts";
import { PROTOCOL_VERSION } from "../protocol/fields.ts";
import { MsgpackWriter, encodeKey, type EncodedKey } from "./msgpack-writer.ts";

/**
 * The bytes of the telemetry messages the publisher writes (PROTOCOL.md LayerHealthReport and
 * TelemetryBatch), written field by field into a MsgpackWriter. `health_metrics` goes last, so
 * the seeds can be streamed in and their count patched once the batch is cut.
 */

/** What a LayerHealthReport says about its window, besides the seeds' metrics. */
export interface WindowInfo {
  /** `telemetry_window`: [start, end], e.g. the first and last training step the window covers. */
  readonly window: readonly [number, number];
  /** The training step the metrics were sampled on; written as `performance_summary.step`. */
  readonly step?: number;
  /** `total_seeds`: seeds of the layer. Default: the seeds in this window. */
  readonly totalSeeds?: number;
  /** `active_seeds`: seeds of the layer not DORMANT, as the data plane counts them. Default 0. */
  readonly activeSeeds?: number;
  /**
   * `performance_summary`, e.g. `{ epoch, loss }`: a layer owner reads `epoch` as the epoch
   * tick (PROTOCOL.md), so set it only on the window that ends an epoch.
   */
  readonly performanceSummary?: Readonly<Record<string, unknown>>;
  readonly anomalies?: readonly unknown[];
}

/** A window's envelope, encoded once however many entries the window is cut into. */
export interface PreparedWindow {
  readonly layerId: string;
  readonly window: readonly [number, number];
  readonly totalSeeds: number;
  readonly activeSeeds: number;
  readonly summary: Uint8Array;
  readonly anomalies: Uint8Array;
}

const K = {
  message_type: encodeKey("message_type"),
  message_id: encodeKey("message_id"),
  timestamp: encodeKey("timestamp"),
  source: encodeKey("source"),
  version: encodeKey("version"),
  layer_id: encodeKey("layer_id"),
  total_seeds: encodeKey("total_seeds"),
  active_seeds: encodeKey("active_seeds"),
  telemetry_window: encodeKey("telemetry_window"),
  performance_summary: encodeKey("performance_summary"),
  anomalies: encodeKey("anomalies"),
  metadata: encodeKey("metadata"),
  health_metrics: encodeKey("health_metrics"),
  messages: encodeKey("messages"),
  compression: encodeKey("compression"),
  batch_size: encodeKey("batch_size"),
  LayerHealthReport: encodeKey("LayerHealthReport"),
  TelemetryBatch: encodeKey("TelemetryBatch"),
};

const EMPTY_LIST = encodeBody([], "msgpack");

const count = (u: unknown, name: string): number => {
  if (typeof u !== "number" || !Number.isSafeInteger(u) || u < 0) throw new RangeError(`${name} must be a non-negative integer, got ${String(u)}`);
  return u;
};

export const prepareWindow = (layerId: string, info: WindowInfo, seeds: number): PreparedWindow => {
  const [start, end] = info.window;
  if (!Number.isFinite(start) || !Number.isFinite(end)) throw new RangeError(`telemetry_window must be two finite numbers, got [${start}, ${end}]`);
  const summary = info.step === undefined ? (info.performanceSummary ?? {}) : { ...info.performanceSummary, step: info.step };
  return {
    layerId,
    window: [start, end],
    totalSeeds: count(info.totalSeeds ?? seeds, "totalSeeds"),
    activeSeeds: count(info.activeSeeds ?? 0, "activeSeeds"),
    summary: encodeBody(summary, "msgpack"),
    anomalies: info.anomalies === undefined || info.anomalies.length === 0 ? EMPTY_LIST : encodeBody(info.anomalies, "msgpack"),
  };
};

const envelope = (w: MsgpackWriter, type: EncodedKey, source: string): void => {
  w.key(K.message_type);
  w.key(type);
  w.key(K.message_id);
  w.str(randomUUID());
  w.key(K.timestamp);
  w.float64(Date.now() / 1000);
  w.key(K.source);
  w.str(source);
  w.key(K.version);
  w.str(PROTOCOL_VERSION);
};

/**
 * Starts a LayerHealthReport: everything up to `health_metrics`, whose map header is left for
 * `endReport`. Returns where that header is. `metadata`, when given, is an encoded map.
 */
export const beginReport = (w: MsgpackWriter, p: PreparedWindow, source: string, metadata?: Uint8Array): number => {
  w.mapHeader(metadata === undefined ? 12 : 13);
  envelope(w, K.LayerHealthReport, source);
  w.key(K.layer_id);
  w.str(p.layerId);
  w.key(K.total_seeds);
  w.number(p.totalSeeds);
  w.key(K.active_seeds);
  w.number(p.activeSeeds);
  w.key(K.telemetry_window);
  w.arrayHeader(2);
  w.float64(p.window[0]);
  w.float64(p.window[1]);
  w.key(K.performance_summary);
  w.raw(p.summary);
  w.key(K.anomalies);
  w.raw(p.anomalies);
  if (metadata !== undefined) {
    w.key(K.metadata);
    w.raw(metadata);
  }
  w.key(K.health_metrics);
  return w.header32(0xdf);
};

export const endReport = (w: MsgpackWriter, headerAt: number, seeds: number): void => w.patch32(headerAt, seeds);

/** Bytes a TelemetryBatch adds in front of its messages, at most, for a given `source`. */
export const batchOverhead = (source: string): number => 192 + Buffer.byteLength(source);

/**
 * The head of a TelemetryBatch of `count` messages: every field, `messages` last, up to and
 * including its array header. The encoded messages follow it byte for byte.
 */
export const batchHeader = (count: number, source: string, compression: string | null): Uint8Array => {
  const w = new MsgpackWriter(batchOverhead(source));
  w.mapHeader(8);
  envelope(w, K.TelemetryBatch, source);
  w.key(K.compression);
  if (compression === null) w.nil();
  else w.str(compression);
  w.key(K.batch_size);
  w.number(count);
  w.key(K.messages);
  w.arrayHeader(count);
  return w.bytes.subarray(0, w.pos);
};

/** The claim-check reference: a LayerHealthReport without seeds whose metadata names the payload. */
export const claimReference = (p: PreparedWindow, source: string, claim: ClaimCheck): Uint8Array => {
  const w = new MsgpackWriter(512);
  const at = beginReport(w, p, source, encodeBody({ claim_check: claim }, "msgpack"));
  endReport(w, at, 0);
  return w.copy();
};

/** `metadata.claim_check` of a reference entry: where the payload is and how to read it. */
export interface ClaimCheck {
  /** The claim stream, `P.claim.layer.{L}`. */
  readonly key: string;
  /** The payload's entry id in it. */
  readonly id: string;
  /** The payload entry's `type` and `enc`. */
  readonly type: string;
  readonly enc: string;
  readonly bytes: number;
  /** Seed records the payload holds. */
  readonly records: number;
}
