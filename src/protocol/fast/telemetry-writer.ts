import type { ClaimCheck } from "../../telemetry/claim-check.ts";
import type { ReportWindow } from "../../telemetry/records.ts";
import { encodeBody } from "../codec.ts";
import { PROTOCOL_VERSION } from "../fields.ts";
import { newMessageId } from "../message-id.ts";
import { MsgpackWriter, encodeKey, type EncodedKey } from "./msgpack-writer.ts";
import type { RecordWriter } from "./telemetry-record-writer.ts";

/**
 * The fast path's bytes of the telemetry messages the publisher writes (docs/protocol.md
 * LayerHealthReport and TelemetryBatch), written field by field into a MsgpackWriter instead of
 * built as messages and packed (~2 µs a seed saved, msgpack-writer.ts). `health_metrics` goes
 * last, so the seeds can be streamed in and their count patched once the batch is cut. What it
 * writes decodes, through the Schema, to the message the builders make of the same window
 * (test/telemetry/writer.test.ts).
 */

/** A window as the fast path writes it: its envelope's free-form parts encoded once, and its records' writer. */
export interface PreparedWindow {
  readonly window: ReportWindow;
  readonly summary: Uint8Array;
  readonly anomalies: Uint8Array;
  readonly write: RecordWriter;
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

export const prepareWindow = (window: ReportWindow, write: RecordWriter): PreparedWindow => ({
  window,
  summary: encodeBody(window.performanceSummary, "msgpack"),
  anomalies: window.anomalies.length === 0 ? EMPTY_LIST : encodeBody(window.anomalies, "msgpack"),
  write,
});

const envelope = (w: MsgpackWriter, type: EncodedKey, source: string, nowMs: number): void => {
  w.key(K.message_type);
  w.key(type);
  w.key(K.message_id);
  w.str(newMessageId());
  w.key(K.timestamp);
  w.float64(nowMs / 1000);
  w.key(K.source);
  w.str(source);
  w.key(K.version);
  w.str(PROTOCOL_VERSION);
};

/**
 * Starts a LayerHealthReport: everything up to `health_metrics`, whose map header is left for
 * `endReport`. Returns where that header is. `metadata`, when given, is an encoded map.
 */
export const beginReport = (w: MsgpackWriter, p: PreparedWindow, source: string, nowMs: number, metadata?: Uint8Array): number => {
  const { layerId, totalSeeds, activeSeeds, window } = p.window;
  w.mapHeader(metadata === undefined ? 12 : 13);
  envelope(w, K.LayerHealthReport, source, nowMs);
  w.key(K.layer_id);
  w.str(layerId);
  w.key(K.total_seeds);
  w.number(totalSeeds);
  w.key(K.active_seeds);
  w.number(activeSeeds);
  w.key(K.telemetry_window);
  w.arrayHeader(2);
  w.float64(window[0]);
  w.float64(window[1]);
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
export const batchHeader = (count: number, source: string, compression: string | null, nowMs: number): Uint8Array => {
  const w = new MsgpackWriter(batchOverhead(source));
  w.mapHeader(8);
  envelope(w, K.TelemetryBatch, source, nowMs);
  w.key(K.compression);
  if (compression === null) w.nil();
  else w.str(compression);
  w.key(K.batch_size);
  w.number(count);
  w.key(K.messages);
  w.arrayHeader(count);
  return w.bytes.subarray(0, w.pos);
};

const NO_RECORDS: RecordWriter = () => {};

/** The claim-check reference: a LayerHealthReport without seeds whose metadata names the payload. */
export const claimReference = (window: ReportWindow, source: string, claim: ClaimCheck, nowMs: number): Uint8Array => {
  const w = new MsgpackWriter(512);
  const at = beginReport(w, prepareWindow(window, NO_RECORDS), source, nowMs, encodeBody({ claim_check: claim }, "msgpack"));
  endReport(w, at, 0);
  return w.copy();
};
