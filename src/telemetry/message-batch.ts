import { decodeBody, encodeBody } from "../protocol/codec.ts";
import { layerHealthReport, telemetryBatch } from "../protocol/make.ts";
import type { LayerHealthReport } from "../protocol/messages.ts";
import type { BatchWriter, SealedBytes, TelemetryEncoding } from "./batch.ts";
import type { ClaimCheck } from "./claim-check.ts";
import { healthRecord, type CheckedRecords, type ReportWindow } from "./records.ts";

/**
 * The publisher's batches on the general path, with fast paths off (protocol/fast/switch.ts):
 * each report built by the protocol's builder (make.ts, the Schema's own decoding), several of
 * them in a TelemetryBatch, and the message encoded as every message is (codec.ts, as
 * encodeEntry does). It is what the fast path (protocol/fast/telemetry-batch.ts) must agree
 * with, and what a benchmark measures it against.
 *
 * A batch is cut on the same bounds as on the fast path, but its size is known only once it is
 * encoded, so it is counted as the most the encoder can write: every number as a float64, every
 * header in its longest form. An entry is then over maxEntryBytes only where the fast path's
 * would be too (one record larger than that), and is cut a little sooner.
 */

/** Most bytes of a report besides its free-form fields, source, layer id and seeds (each field's key and longest value). */
const REPORT_ENVELOPE_BYTES = 288;
/** Most bytes a number takes (float64). */
const NUMBER_BYTES = 9;
/** Metric names whose sizes are kept, as the fast path keeps their bytes. */
const MAX_KEYS = 10_000;

/** Most bytes msgpack takes for a string of `bytes` UTF-8 bytes, header included. */
const stringBytes = (bytes: number): number => bytes + (bytes < 32 ? 1 : bytes < 0x100 ? 2 : bytes < 0x10000 ? 3 : 5);

/** A window as the general path writes it. */
interface MessageWindow {
  readonly window: ReportWindow;
  readonly records: CheckedRecords;
  /** Most bytes its report takes without seeds. */
  readonly envelopeBytes: number;
}

export class TelemetryMessageEncoding implements TelemetryEncoding<MessageWindow> {
  private readonly keySizes = new Map<string, number>();

  constructor(
    readonly source: string,
    /** The TelemetryBatch `compression` field. */
    readonly compression: string | null,
    /** Bytes counted for a TelemetryBatch head, as the fast path leaves free for one. */
    readonly reserve: number,
  ) {}

  prepare(window: ReportWindow, records: CheckedRecords): MessageWindow {
    const summary = encodeBody(window.performanceSummary, "msgpack");
    const anomalies = encodeBody(window.anomalies, "msgpack");
    // Copies, as a reader will read them: the caller's own may change once publishWindow returns.
    const copy: ReportWindow = {
      ...window,
      performanceSummary: decodeBody(summary, "msgpack") as ReportWindow["performanceSummary"],
      anomalies: decodeBody(anomalies, "msgpack") as ReportWindow["anomalies"],
    };
    // Built once without seeds, so that a window its Schema refuses is refused before a record is added.
    this.report(copy, {}, 0);
    const envelopeBytes = REPORT_ENVELOPE_BYTES + Buffer.byteLength(this.source) + window.layerId.length + summary.length + anomalies.length;
    return { window: copy, records, envelopeBytes };
  }

  open(): BatchWriter<MessageWindow> {
    return new MessageBatch(this);
  }

  reference(window: ReportWindow, claim: ClaimCheck, nowMs: number): Uint8Array {
    return encodeBody(this.report(window, {}, nowMs, { claim_check: claim }), "msgpack");
  }

  report(w: ReportWindow, health: LayerHealthReport["health_metrics"], nowMs: number, metadata?: Readonly<Record<string, unknown>>): LayerHealthReport {
    return layerHealthReport({
      source: this.source,
      timestamp: nowMs / 1000,
      layer_id: w.layerId,
      total_seeds: w.totalSeeds,
      active_seeds: w.activeSeeds,
      telemetry_window: w.window,
      performance_summary: w.performanceSummary,
      anomalies: w.anomalies,
      health_metrics: health,
      ...(metadata === undefined ? {} : { metadata }),
    });
  }

  /** Most bytes a record takes: its seed key, its map header, and per metric its name and a float64. */
  recordBytes(seed: string, metrics: Readonly<Record<string, number>>): number {
    let n = stringBytes(seed.length) + 5;
    for (const name in metrics) {
      let k = this.keySizes.get(name);
      if (k === undefined) {
        k = stringBytes(Buffer.byteLength(name));
        if (this.keySizes.size < MAX_KEYS) this.keySizes.set(name, k);
      }
      n += k + NUMBER_BYTES;
    }
    return n;
  }
}

class MessageBatch implements BatchWriter<MessageWindow> {
  size: number;
  private readonly reports: LayerHealthReport[] = [];
  private window: MessageWindow | null = null;
  private nowMs = 0;
  /** The report in hand's records: seed keys and their metrics, and what each counted toward `size`. */
  private readonly seeds: string[] = [];
  private readonly metrics: Record<string, number>[] = [];
  private readonly counted: number[] = [];

  constructor(private readonly encoding: TelemetryMessageEncoding) {
    this.size = encoding.reserve;
  }

  beginReport(window: MessageWindow, nowMs: number): void {
    this.window = window;
    this.nowMs = nowMs;
    this.size += window.envelopeBytes;
  }

  addRecord(i: number): void {
    const [seed, metrics] = healthRecord(this.window!.records, i);
    const bytes = this.encoding.recordBytes(seed, metrics);
    this.seeds.push(seed);
    this.metrics.push(metrics);
    this.counted.push(bytes);
    this.size += bytes;
  }

  dropRecord(): void {
    this.seeds.pop();
    this.metrics.pop();
    this.size -= this.counted.pop()!;
  }

  endReport(): void {
    const health: Record<string, Record<string, number>> = {};
    for (let j = 0; j < this.seeds.length; j++) health[this.seeds[j]!] = this.metrics[j]!;
    this.reports.push(this.encoding.report(this.window!.window, health, this.nowMs));
    this.clearReport();
  }

  dropReport(): void {
    this.size -= this.window!.envelopeBytes;
    for (const bytes of this.counted) this.size -= bytes;
    this.clearReport();
  }

  seal(_reports: number, nowMs: number): SealedBytes {
    const { source, compression } = this.encoding;
    const message = this.reports.length === 1 ? this.reports[0]! : telemetryBatch({ source, timestamp: nowMs / 1000, compression, messages: this.reports });
    return { raw: encodeBody(message, "msgpack") };
  }

  private clearReport(): void {
    this.seeds.length = 0;
    this.metrics.length = 0;
    this.counted.length = 0;
  }
}
