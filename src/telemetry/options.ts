import type { Topology } from "../protocol/streams.ts";
import { DECODE_LIMITS, DEFAULT_MAX_MESSAGE_BYTES, MAX_SOURCE_LENGTH } from "../protocol/limits.ts";

/**
 * Everything the telemetry publisher can be told. Every default is written once, in
 * TELEMETRY_DEFAULTS. Names follow the original TelemetryConfig where one exists
 * (batch_size -> batchSize, batch_window_ms -> batchWindowMs, compression,
 * claim_check_threshold -> claimCheckThreshold); its aggregation and anomaly switches belong to
 * Tamiyo's side and are not the publisher's business.
 */
export interface TelemetryPublisherOptions {
  /** Key namespace P. Default: ESPER_NAMESPACE, else "morphogenetic". */
  readonly namespace?: string;
  /** Stream names: esper's or the reference's (docs/protocol.md). Default: ESPER_TOPOLOGY, else "esper". */
  readonly topology?: Topology;
  /** `source` of the messages written. Default "esper.telemetry". */
  readonly source?: string;
  /**
   * Most seed records in one stream entry (original `batch_size`, which counted messages; here a
   * record is one seed's metrics of one window, and one entry carries many). Default 1024.
   */
  readonly batchSize?: number;
  /**
   * Most bytes of one entry's `data` before compression: a batch is cut before it grows past
   * this. Default 512 KiB, half the 1 MiB every reader accepts (docs/protocol.md), so an entry never
   * needs the claim check unless a single seed's record is that large.
   */
  readonly maxEntryBytes?: number;
  /**
   * Longest a record waits in an open batch before the batch is written (original
   * `batch_window_ms`, default there 1000). Default 100 ms: Tamiyo decides on what it has read,
   * and a window of a large layer fills its batches long before.
   */
  readonly batchWindowMs?: number;
  /**
   * `"none"` (default) or `"deflate"` (`enc: msgpack+deflate`). Deflate shrinks telemetry ~3x
   * (metric names repeat on every seed: 119 -> 37 bytes a record, level 1), but costs more CPU
   * than Redis takes to move the bytes it saves: bench/telemetry-throughput.ts measured
   * ~0.45x the records/s of no compression. Worth it only where the network between trainer
   * and Redis, or Redis's memory, is the bottleneck.
   */
  readonly compression?: "none" | "deflate";
  /** zlib level for `deflate`. Default 1: most of the gain for a fraction of the cost of 6. */
  readonly compressionLevel?: number;
  /**
   * An entry whose `data` is larger is stored by claim check: the payload goes to the layer's
   * claim stream `P.claim.layer.{L}` and the telemetry stream carries a LayerHealthReport
   * without health_metrics whose `metadata.claim_check` names it. Default 1 MiB, the readers'
   * limit (the original's 10 MB would have every reader refuse the entry as too large).
   */
  readonly claimCheckThreshold?: number;
  /** Largest payload stored by claim check; a larger one is dropped and counted. Default 64 MiB. */
  readonly maxClaimBytes?: number;
  /** MAXLEN ~ of the claim stream: payloads kept for readers. Default 100. */
  readonly claimMaxLen?: number;
  /**
   * MAXLEN ~ of the telemetry stream. Default 1000 entries: ~1M records a layer, ~120 MB with
   * full batches, at most 512 MiB at the largest entry size. Batched entries are big, so the
   * bus's default of 100000 would let a layer's stream grow to tens of GB while Tamiyo is away.
   */
  readonly maxLen?: number;
  /**
   * Bytes of sealed entries waiting for the bus. Past it the oldest are dropped and counted:
   * telemetry may be sampled down under pressure, commands and events never. Default 64 MiB.
   */
  readonly maxQueuedBytes?: number;
  /** Most entries written in one round trip (pipelined on Redis). Default 64. */
  readonly entriesPerWrite?: number;
}

export type ResolvedTelemetryPublisherOptions = Required<Omit<TelemetryPublisherOptions, "namespace" | "topology">> & { readonly namespace: string | undefined; readonly topology: Topology | undefined };

export const TELEMETRY_DEFAULTS: Omit<ResolvedTelemetryPublisherOptions, "namespace" | "topology"> = {
  source: "esper.telemetry",
  batchSize: 1024,
  maxEntryBytes: 512 * 1024,
  batchWindowMs: 100,
  compression: "none",
  compressionLevel: 1,
  claimCheckThreshold: DEFAULT_MAX_MESSAGE_BYTES,
  maxClaimBytes: 64 * 1024 * 1024,
  claimMaxLen: 100,
  maxLen: 1_000,
  maxQueuedBytes: 64 * 1024 * 1024,
  entriesPerWrite: 64,
};

export const resolveTelemetryOptions = (options: TelemetryPublisherOptions): ResolvedTelemetryPublisherOptions => {
  const o = {
    ...TELEMETRY_DEFAULTS,
    ...(Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as TelemetryPublisherOptions),
    namespace: options.namespace,
    topology: options.topology,
  };
  const positive = (name: keyof typeof o, value: number) => {
    if (!(value > 0)) throw new RangeError(`telemetry option ${name} must be positive, got ${value}`);
  };
  positive("batchSize", o.batchSize);
  positive("maxEntryBytes", o.maxEntryBytes);
  positive("claimCheckThreshold", o.claimCheckThreshold);
  positive("maxLen", o.maxLen);
  positive("claimMaxLen", o.claimMaxLen);
  positive("entriesPerWrite", o.entriesPerWrite);
  // Past these every reader would refuse the entries (docs/protocol.md, DECODE_LIMITS), and the general path's builders throw.
  if (o.source.length > MAX_SOURCE_LENGTH) throw new RangeError(`telemetry option source is ${o.source.length} characters, over the limit of ${MAX_SOURCE_LENGTH}`);
  if (o.batchSize > DECODE_LIMITS.maxEntries) throw new RangeError(`telemetry option batchSize must be at most ${DECODE_LIMITS.maxEntries} (seeds a report may hold), got ${o.batchSize}`);
  if (o.batchWindowMs < 0) throw new RangeError(`telemetry option batchWindowMs must be >= 0, got ${o.batchWindowMs}`);
  if (o.compression !== "none" && o.compression !== "deflate") {
    throw new RangeError(`telemetry option compression must be "none" or "deflate", got ${JSON.stringify(o.compression)}`);
  }
  return o;
};
