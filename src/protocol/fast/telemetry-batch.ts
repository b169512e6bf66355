import type { BatchWriter, SealedBytes, TelemetryEncoding } from "../../telemetry/batch.ts";
import type { ClaimCheck } from "../../telemetry/claim-check.ts";
import type { CheckedRecords, ReportWindow } from "../../telemetry/records.ts";
import { MsgpackWriter, encodeKey, type EncodedKey } from "./msgpack-writer.ts";
import { recordWriter } from "./telemetry-record-writer.ts";
import { batchHeader, batchOverhead, beginReport, claimReference, endReport, prepareWindow, type PreparedWindow } from "./telemetry-writer.ts";

/**
 * The publisher's batches on the fast path: each layer's reports written one after the other
 * into a buffer of its own, after `reserve` bytes left free for a TelemetryBatch head. When the
 * batch is sealed, the buffer becomes the entry's data without a copy, whether it holds one
 * report or several.
 */

/** Spare batch buffers kept: as many as one write takes by default (entriesPerWrite). */
const MAX_SPARE_BUFFERS = 64;
/** Metric names whose bytes are kept: a data plane has a few dozen; a bound against one that makes names up. */
const MAX_KEYS = 10_000;

export class TelemetryByteEncoding implements TelemetryEncoding<PreparedWindow> {
  /** Bytes left free at the front of each batch's buffer for a TelemetryBatch head. */
  readonly reserve: number;
  /** Size of each layer's last entry: the next batch's buffer starts that large, so it rarely grows (a growth is a copy). */
  private readonly lastSize = new Map<string, number>();
  private readonly keys = new Map<string, EncodedKey>();
  /**
   * Batch buffers whose bytes nobody reads any more. A fresh buffer of ~100 KB costs more in
   * page faults and garbage collection than filling it does; used again, it is already mapped.
   */
  private readonly spare: Uint8Array[] = [];

  constructor(
    readonly source: string,
    /** The TelemetryBatch `compression` field: how the entry's data is compressed. */
    readonly compression: string | null,
    private readonly maxEntryBytes: number,
  ) {
    this.reserve = batchOverhead(source);
  }

  prepare(window: ReportWindow, records: CheckedRecords): PreparedWindow {
    return prepareWindow(window, recordWriter(records, this.keyBytes));
  }

  open(layerId: string): BatchWriter<PreparedWindow> {
    const size = Math.min(this.lastSize.get(layerId) ?? 64 * 1024, this.maxEntryBytes) + this.reserve + 4096;
    const spare = this.spare.length > 0 && this.spare[this.spare.length - 1]!.length >= size ? this.spare.pop()! : undefined;
    return new ByteBatch(this, layerId, new MsgpackWriter(spare ?? size));
  }

  reference(window: ReportWindow, claim: ClaimCheck, nowMs: number): Uint8Array {
    return claimReference(window, this.source, claim, nowMs);
  }

  sealed(layerId: string, bytes: number): void {
    this.lastSize.set(layerId, bytes + bytes / 8);
  }

  reuse(buffer: Uint8Array): void {
    if (this.spare.length < MAX_SPARE_BUFFERS) this.spare.push(buffer);
  }

  private keyBytes = (metric: string): EncodedKey => {
    let k = this.keys.get(metric);
    if (k === undefined) {
      k = encodeKey(metric);
      if (this.keys.size < MAX_KEYS) this.keys.set(metric, k);
    }
    return k;
  };
}

class ByteBatch implements BatchWriter<PreparedWindow> {
  private window: PreparedWindow | null = null;
  private reportStart = 0;
  /** Where the report in hand's health_metrics header is. */
  private header = 0;
  /** Where the record added last starts. */
  private mark = 0;

  constructor(
    private readonly encoding: TelemetryByteEncoding,
    private readonly layerId: string,
    private readonly w: MsgpackWriter,
  ) {
    w.pos = encoding.reserve;
  }

  get size(): number {
    return this.w.pos;
  }

  beginReport(window: PreparedWindow, nowMs: number): void {
    this.window = window;
    this.reportStart = this.w.pos;
    this.header = beginReport(this.w, window, this.encoding.source, nowMs);
  }

  addRecord(i: number): void {
    this.mark = this.w.pos;
    this.window!.write(this.w, i);
  }

  dropRecord(): void {
    this.w.pos = this.mark;
  }

  endReport(seeds: number): void {
    endReport(this.w, this.header, seeds);
  }

  dropReport(): void {
    this.w.pos = this.reportStart;
  }

  seal(reports: number, nowMs: number): SealedBytes {
    const { w, encoding } = this;
    let start = encoding.reserve;
    if (reports > 1) {
      const head = batchHeader(reports, encoding.source, encoding.compression, nowMs);
      start -= head.length;
      w.bytes.set(head, start);
    }
    const raw = w.bytes.subarray(start, w.pos);
    encoding.sealed(this.layerId, raw.length);
    const buffer = w.bytes;
    return { raw, release: () => encoding.reuse(buffer) };
  }
}
