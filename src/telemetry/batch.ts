import type { ClaimCheck } from "./claim-check.ts";
import type { CheckedRecords, ReportWindow } from "./records.ts";

/**
 * How the publisher's entries are written, one layer's batch at a time. Two ways: the fast path
 * writes msgpack bytes straight from the records (protocol/fast/telemetry-batch.ts), the general
 * path builds the messages with the protocol's builders and encodes them as any message is
 * (message-batch.ts). The publisher cuts and seals both the same way, so the entries differ in
 * how they were encoded, never in what they hold.
 *
 * `W` is a window as the encoding writes it, prepared once however many batches it is cut into.
 */
export interface TelemetryEncoding<W> {
  prepare(window: ReportWindow, records: CheckedRecords): W;
  /** An empty batch for one layer. */
  open(layerId: string): BatchWriter<W>;
  /** The bytes of a claim-check reference: a LayerHealthReport of `window` without seeds whose metadata names the payload. */
  reference(window: ReportWindow, claim: ClaimCheck, nowMs: number): Uint8Array;
}

/**
 * One entry being filled: LayerHealthReports one after the other, a report's records one by one.
 * Sealed, it holds one report (the entry is that LayerHealthReport) or several (a TelemetryBatch
 * of them).
 */
export interface BatchWriter<W> {
  /**
   * Bytes the entry takes so far, room for a TelemetryBatch head included: exact on the fast path,
   * at most on the general one, which learns its size only once it encodes.
   */
  readonly size: number;
  /** Starts a report of `window`, stamped `nowMs`. */
  beginReport(window: W, nowMs: number): void;
  /** Adds record i of the window's records to the report in hand. */
  addRecord(i: number): void;
  /** Takes the record added last out again: it goes into the next batch instead. */
  dropRecord(): void;
  /** Closes the report in hand, which holds `seeds` records. */
  endReport(seeds: number): void;
  /** Takes the report in hand out again: it holds no record. */
  dropReport(): void;
  /** The entry's message, as msgpack bytes, after the `reports` closed into it; the batch is done with. */
  seal(reports: number, nowMs: number): SealedBytes;
}

export interface SealedBytes {
  readonly raw: Uint8Array;
  /** Hands raw's buffer back for another batch, once nothing reads raw any more; absent where it cannot be used again. */
  readonly release?: () => void;
}
