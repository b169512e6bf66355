/**
 * The telemetry publisher: per-seed metrics of Kasmina layers -> `P.telemetry.layer.{L}`.
 *
 * A window of a layer (one record per seed) is encoded as it is handed over, straight into the
 * open batch of its layer; a batch becomes one stream entry when it holds `batchSize` records,
 * would pass `maxEntryBytes`, or has waited `batchWindowMs`. A background pump writes sealed
 * entries through the bus, `entriesPerWrite` per round trip.
 *
 * Why LayerHealthReport, not a TelemetryBatch of SeedMetricsSnapshots: a report carries the
 * envelope (message id, timestamp, source, version, layer) once and each seed as
 * `"seed": {metric: value}`; a snapshot repeats the envelope and its other fields per seed.
 * Measured for the same records (7.75 metrics each, bench/lib/telemetry-workload.ts): 119 bytes
 * a record as reports, 418 as snapshots; decoding 0.3 µs a record (scan.ts) against 10 µs.
 * An entry holding one window is a LayerHealthReport; one holding several windows of a layer
 * (small layers, frequent windows) is a TelemetryBatch of LayerHealthReports. A window too large
 * for one entry is cut into several reports with the same telemetry_window and disjoint seeds.
 *
 * Delivery: telemetry may be sampled down, never blocks the data plane, and every loss is
 * counted (`dropped`): when the bus refuses or is closed, or when more than `maxQueuedBytes`
 * wait for it (the oldest entries go first).
 */
import { deflateSync } from "node:zlib";
import { Effect, type Scope } from "effect";
import type { Bus, EntryFields } from "../bus/bus.ts";
import { signEntry, type HmacKey } from "../protocol/entry.ts";
import { isLayerId, streams as streamNames } from "../protocol/streams.ts";
import type { TelemetryColumn } from "../kasmina/telemetry.ts";
import { MsgpackWriter, encodeKey, type EncodedKey } from "./msgpack-writer.ts";
import { resolveTelemetryOptions, type ResolvedTelemetryPublisherOptions, type TelemetryPublisherOptions } from "./options.ts";
import { recordSource, type SeedRecords } from "./records.ts";
import { batchHeader, batchOverhead, beginReport, claimReference, endReport, prepareWindow, type PreparedWindow, type WindowInfo } from "./report-writer.ts";

export interface TelemetryPublisherStats {
  /** Seed records handed over and encoded. */
  readonly records: number;
  /** Records in entries the bus accepted. */
  readonly recordsWritten: number;
  /** Entries the bus accepted (a claim check counts once). */
  readonly entries: number;
  /** Records lost: refused by the bus, queue over its bound, payload over maxClaimBytes, or left at close. */
  readonly dropped: number;
  /** Entries stored by claim check. */
  readonly claims: number;
  /** Bytes of `data` written (after compression). */
  readonly bytes: number;
  /** Bytes of `data` before compression. */
  readonly rawBytes: number;
  /** Sealed entries waiting for the bus, and their bytes. */
  readonly queued: number;
  readonly queuedBytes: number;
  /** Bus failures seen; the last one's message. */
  readonly errors: number;
  readonly lastError: string | null;
}

export interface TelemetryPublisher {
  /**
   * Encodes one window of a layer's seed metrics into that layer's open batch; returns the
   * number of records taken. Never waits for the bus. Throws (RangeError/TypeError) only on
   * input no reader would accept: a bad layer id, seed id, window or non-number metric.
   */
  readonly publishWindow: (layerId: string, info: WindowInfo, records: SeedRecords) => number;
  /**
   * kasmina's `onTelemetry` hook (KasminaHooks): the telemetry tensor of a window. The window
   * reported is [previous step of this layer + 1, step].
   */
  readonly sink: (layerId: string, step: number, rows: Float32Array, columns: readonly TelemetryColumn[]) => void;
  /** Seals every open batch and waits until everything sealed is written (or dropped). */
  readonly flush: Effect.Effect<void>;
  /** Waits until the entries sealed so far are written, without cutting open batches: backpressure for fast producers. */
  readonly settle: Effect.Effect<void>;
  readonly stats: () => TelemetryPublisherStats;
  /** Bytes of sealed entries waiting for the bus (stats().queuedBytes, without building the stats). */
  readonly backlogBytes: () => number;
  /**
   * Waits until at most `bytes` of sealed entries wait for the bus: backpressure for a producer
   * that outruns Redis, woken by the writes themselves. Polling backlogBytes instead (on
   * setImmediate) keeps the producer's process at full CPU while it waits, taken from Redis
   * and the readers when they share the machine.
   */
  readonly backlogAtMost: (bytes: number) => Effect.Effect<void>;
}

export interface TelemetryPublisherConfig extends TelemetryPublisherOptions {
  /** The deployment's key: entries are signed (PROTOCOL.md `sig`). */
  readonly hmacKey?: HmacKey;
}

/**
 * A layer's batch being filled. Its reports are written one after the other into its own
 * buffer, after `reserve` bytes left free for a TelemetryBatch head: when the batch is sealed,
 * the buffer becomes the entry's data without a copy, whether it holds one report or several.
 */
interface OpenBatch {
  readonly layerId: string;
  readonly w: MsgpackWriter;
  /** Reports closed into it. */
  reports: number;
  /** The first window in it: a claim-check reference speaks for the batch with it. */
  first: PreparedWindow | null;
  lastWindowEnd: number;
  records: number;
  openedAt: number;
}

interface Sealed {
  readonly layerId: string;
  readonly fields: EntryFields;
  readonly records: number;
  readonly rawBytes: number;
  /** The reference's window when the entry goes by claim check. */
  readonly claim: PreparedWindow | null;
  /** The batch buffer `data` lies in, to be used again once the bus holds a copy; null when it may not be. */
  readonly buffer: Uint8Array | null;
}

/** Spare batch buffers kept: as many as one write takes by default (entriesPerWrite). */
const MAX_SPARE_BUFFERS = 64;

/** Starts a publisher in the current Scope; closing the Scope flushes what is open. */
export const makeTelemetryPublisher = (bus: Bus, config: TelemetryPublisherConfig = {}): Effect.Effect<TelemetryPublisher, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => new Publisher(bus, resolveTelemetryOptions(config), config.hmacKey)),
    (p) => p.close(),
  ).pipe(Effect.map((p) => p.api));

class Publisher {
  private readonly names;
  /** Bytes left free at the front of each batch's buffer for a TelemetryBatch head. */
  private readonly reserve: number;
  /** Size of each layer's last entry: the next batch's buffer starts that large. */
  private readonly lastSize = new Map<string, number>();
  private readonly keys = new Map<string, EncodedKey>();
  private readonly open = new Map<string, OpenBatch>();
  private readonly lastStep = new Map<string, number>();
  private readonly queue: Sealed[] = [];
  /**
   * Batch buffers whose bytes the bus no longer needs. A fresh buffer of ~100 KB costs more in
   * page faults and garbage collection than filling it does; reused, it is already mapped. Only
   * for a bus that keeps a copy of what it is given (RedisBus: Redis holds the bytes once it has
   * answered with an id): an in-process bus keeps the very buffer, so nothing comes back here.
   */
  private readonly spare: Uint8Array[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly backlogWaiters: { readonly bytes: number; readonly resume: () => void }[] = [];
  private pumping: Promise<void> | null = null;
  private closed = false;
  private readonly s = { records: 0, recordsWritten: 0, entries: 0, dropped: 0, claims: 0, bytes: 0, rawBytes: 0, queuedBytes: 0, errors: 0, lastError: null as string | null };

  constructor(
    private readonly bus: Bus,
    private readonly o: ResolvedTelemetryPublisherOptions,
    private readonly hmacKey: HmacKey | undefined,
  ) {
    this.names = streamNames(o.namespace);
    this.reserve = batchOverhead(o.source);
  }

  readonly api: TelemetryPublisher = {
    publishWindow: (layerId, info, records) => this.publishWindow(layerId, info, records),
    sink: (layerId, step, rows, columns) => {
      const from = (this.lastStep.get(layerId) ?? 0) + 1;
      this.lastStep.set(layerId, step);
      this.publishWindow(layerId, { window: [Math.min(from, step), step], step }, { rows, columns });
    },
    flush: Effect.promise(() => this.flush()),
    settle: Effect.promise(() => this.settle()),
    stats: () => ({ ...this.s, queued: this.queue.length }),
    backlogBytes: () => this.s.queuedBytes,
    backlogAtMost: (bytes) => Effect.promise(() => this.backlogAtMost(bytes)),
  };

  private keyBytes = (metric: string): EncodedKey => {
    let k = this.keys.get(metric);
    if (k === undefined) {
      k = encodeKey(metric);
      if (this.keys.size < 10_000) this.keys.set(metric, k);
    }
    return k;
  };

  private publishWindow(layerId: string, info: WindowInfo, records: SeedRecords): number {
    if (!isLayerId(layerId)) throw new RangeError(`layer id ${JSON.stringify(layerId)} is invalid: use 1 to 64 of [A-Za-z0-9_-]`);
    const source = recordSource(records, this.keyBytes);
    if (this.closed) {
      this.s.dropped += source.count;
      return 0;
    }
    const p = prepareWindow(layerId, info, source.count);
    const { batchSize, maxEntryBytes } = this.o;
    let batch = this.openBatch(layerId);
    let w = batch.w;
    let reportStart = w.pos;
    let header = beginReport(w, p, this.o.source);
    let inReport = 0;
    // Closes the report in hand into the batch (unless it holds no seed), seals the batch, and
    // goes on with a new report of the same window in a new batch.
    const cut = (carry?: Uint8Array) => {
      if (inReport > 0) this.closeReport(batch, p, header, inReport);
      else w.pos = reportStart;
      this.seal(batch);
      batch = this.openBatch(layerId);
      w = batch.w;
      reportStart = w.pos;
      header = beginReport(w, p, this.o.source);
      inReport = 0;
      if (carry !== undefined) w.raw(carry);
    };
    for (let i = 0; i < source.count; i++) {
      if (batch.records + inReport >= batchSize) cut();
      const mark = w.pos;
      source.write(w, i);
      // w.pos counts the reserve too: room for a TelemetryBatch head, so the entry stays within the bound either way.
      if (w.pos > maxEntryBytes && (inReport > 0 || batch.reports > 0)) {
        const carry = w.bytes.slice(mark, w.pos);
        w.pos = mark;
        cut(carry);
      }
      inReport++;
    }
    // A window without seeds still goes out: it may carry the epoch tick.
    if (inReport > 0 || source.count === 0) this.closeReport(batch, p, header, inReport);
    else w.pos = reportStart;
    this.s.records += source.count;
    if (batch.records >= batchSize || this.o.batchWindowMs === 0) this.seal(batch);
    else if (batch.reports > 0) this.arm();
    return source.count;
  }

  private openBatch(layerId: string): OpenBatch {
    let batch = this.open.get(layerId);
    if (batch === undefined) {
      // Sized like this layer's last entry, so it rarely grows (a growth is a copy).
      const size = Math.min(this.lastSize.get(layerId) ?? 64 * 1024, this.o.maxEntryBytes) + this.reserve + 4096;
      const spare = this.spare.length > 0 && this.spare[this.spare.length - 1]!.length >= size ? this.spare.pop()! : undefined;
      const w = new MsgpackWriter(spare ?? size);
      w.pos = this.reserve;
      batch = { layerId, w, reports: 0, first: null, lastWindowEnd: 0, records: 0, openedAt: Date.now() };
      this.open.set(layerId, batch);
    }
    return batch;
  }

  private closeReport(batch: OpenBatch, p: PreparedWindow, header: number, seeds: number): void {
    endReport(batch.w, header, seeds);
    if (batch.reports === 0) batch.openedAt = Date.now();
    batch.reports++;
    batch.first ??= p;
    batch.lastWindowEnd = p.window[1];
    batch.records += seeds;
  }

  /** Turns an open batch into an entry in the queue. */
  private seal(batch: OpenBatch): void {
    this.open.delete(batch.layerId);
    if (batch.reports === 0) return;
    const deflate = this.o.compression === "deflate";
    const w = batch.w;
    let start = this.reserve;
    if (batch.reports > 1) {
      const head = batchHeader(batch.reports, this.o.source, deflate ? "deflate" : null);
      start -= head.length;
      w.bytes.set(head, start);
    }
    const raw = w.bytes.subarray(start, w.pos);
    this.lastSize.set(batch.layerId, raw.length + raw.length / 8);
    const type = batch.reports === 1 ? "LayerHealthReport" : "TelemetryBatch";
    const data = deflate ? deflateSync(raw, { level: this.o.compressionLevel }) : raw;
    const stream = this.names.telemetry(batch.layerId);
    const fields: Record<string, Uint8Array | string> = { data, type, enc: deflate ? "msgpack+deflate" : "msgpack" };
    if (this.hmacKey !== undefined) fields.sig = signEntry(this.hmacKey, stream, type, data);
    this.s.rawBytes += raw.length;
    if (data.length > this.o.maxClaimBytes) {
      this.s.dropped += batch.records;
      this.fail(`an entry of ${data.length} bytes for layer ${batch.layerId} is over maxClaimBytes (${this.o.maxClaimBytes}); dropped`);
      return;
    }
    const claim = data.length > this.o.claimCheckThreshold ? { ...batch.first!, window: [batch.first!.window[0], batch.lastWindowEnd] as const } : null;
    // Deflate made a copy: the buffer is free now. Otherwise it is the entry's data until written.
    if (deflate) this.reuse(w.bytes);
    const buffer = deflate || claim !== null || this.bus.inProcess ? null : w.bytes;
    this.queue.push({ layerId: batch.layerId, fields: fields as EntryFields, records: batch.records, rawBytes: data.length, claim, buffer });
    this.s.queuedBytes += data.length;
    while (this.s.queuedBytes > this.o.maxQueuedBytes && this.queue.length > 1) {
      const oldest = this.queue.shift()!;
      this.s.queuedBytes -= oldest.rawBytes;
      this.s.dropped += oldest.records;
      if (oldest.buffer !== null) this.reuse(oldest.buffer);
    }
    this.backlogShrank();
    this.kick();
  }

  /** Seals batches that have waited batchWindowMs, on one timer for all layers. */
  private arm(): void {
    if (this.timer !== null || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const now = Date.now();
      for (const batch of [...this.open.values()]) {
        if (now - batch.openedAt >= this.o.batchWindowMs) this.seal(batch);
      }
      if ([...this.open.values()].some((b) => b.reports > 0)) this.arm();
    }, this.o.batchWindowMs);
    this.timer.unref?.();
  }

  private kick(): void {
    if (this.pumping !== null || this.queue.length === 0) return;
    this.pumping = this.pump().finally(() => {
      this.pumping = null;
      this.kick();
    });
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.claim !== null) {
        this.queue.shift();
        this.s.queuedBytes -= head.rawBytes;
        this.backlogShrank();
        await this.writeClaim(head);
        continue;
      }
      let n = 0;
      while (n < this.queue.length && n < this.o.entriesPerWrite && this.queue[n]!.claim === null) n++;
      const batch = this.queue.splice(0, n);
      for (const e of batch) this.s.queuedBytes -= e.rawBytes;
      this.backlogShrank();
      const exit = await Effect.runPromiseExit(
        this.bus.publishMany(
          batch.map((e) => ({ stream: this.names.telemetry(e.layerId), fields: e.fields })),
          this.o.maxLen,
        ),
      );
      if (exit._tag === "Success") {
        batch.forEach((e, i) => {
          this.written(e);
          // An empty id: the bus holds the entry for later (Redis away), buffer and all.
          if (e.buffer !== null && exit.value[i] !== "") this.reuse(e.buffer);
        });
      } else {
        for (const e of batch) this.s.dropped += e.records;
        this.fail(String(exit.cause));
      }
    }
  }

  /** The payload to the claim stream first, then the reference: a reader never sees a reference to nothing. */
  private async writeClaim(e: Sealed): Promise<void> {
    const { bus, o, hmacKey } = this;
    const claimKey = this.names.layerKey("claim", e.layerId);
    const stream = this.names.telemetry(e.layerId);
    const outcome = await Effect.runPromiseExit(
      Effect.gen(function* () {
        const id = yield* bus.publish(claimKey, e.fields, o.claimMaxLen);
        if (id === "") return false;
        const data = claimReference(e.claim!, o.source, {
          key: claimKey,
          id,
          type: e.fields.type,
          enc: e.fields.enc as string,
          bytes: e.fields.data.length,
          records: e.records,
        });
        const fields: Record<string, Uint8Array | string> = { data, type: "LayerHealthReport", enc: "msgpack" };
        if (hmacKey !== undefined) fields.sig = signEntry(hmacKey, stream, "LayerHealthReport", data);
        yield* bus.publish(stream, fields as EntryFields, o.maxLen);
        return true;
      }),
    );
    if (outcome._tag === "Success" && outcome.value) {
      this.s.claims++;
      this.written(e);
    } else {
      this.s.dropped += e.records;
      this.fail(outcome._tag === "Failure" ? String(outcome.cause) : `claim stream ${claimKey} did not take the payload (the bus is away)`);
    }
  }

  private reuse(buffer: Uint8Array): void {
    if (this.spare.length < MAX_SPARE_BUFFERS) this.spare.push(buffer);
  }

  private written(e: Sealed): void {
    this.s.entries++;
    this.s.recordsWritten += e.records;
    this.s.bytes += e.fields.data.length;
  }

  private fail(message: string): void {
    this.s.errors++;
    this.s.lastError = message;
  }

  private backlogAtMost(bytes: number): Promise<void> {
    if (this.s.queuedBytes <= bytes) return Promise.resolve();
    return new Promise((resume) => this.backlogWaiters.push({ bytes, resume }));
  }

  private backlogShrank(): void {
    for (let i = this.backlogWaiters.length - 1; i >= 0; i--) {
      const waiter = this.backlogWaiters[i]!;
      if (this.s.queuedBytes > waiter.bytes) continue;
      this.backlogWaiters.splice(i, 1);
      waiter.resume();
    }
  }

  private async settle(): Promise<void> {
    while (this.pumping !== null) await this.pumping;
  }

  private async flush(): Promise<void> {
    for (const batch of [...this.open.values()]) this.seal(batch);
    await this.settle();
  }

  close(): Effect.Effect<void> {
    return Effect.promise(async () => {
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      await this.flush();
      this.closed = true;
    });
  }
}
