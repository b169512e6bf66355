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
 * a record as reports, 418 as snapshots; decoding 0.3 µs a record
 * (protocol/fast/telemetry-scanner.ts) against 10 µs.
 * An entry holding one window is a LayerHealthReport; one holding several windows of a layer
 * (small layers, frequent windows) is a TelemetryBatch of LayerHealthReports. A window too large
 * for one entry is cut into several reports with the same telemetry_window and disjoint seeds.
 *
 * Entries are written by the fast path (protocol/fast/telemetry-batch.ts: bytes straight from
 * the records) or, with fast paths off, by the general one (message-batch.ts: the protocol's
 * builders and codec); the switch is read as each window comes. Both are cut and sealed here,
 * alike. Time is Effect's Clock, captured where the publisher is made, so a TestClock drives
 * its batch windows and timestamps.
 *
 * Delivery: telemetry may be sampled down, never blocks the data plane, and every loss is
 * counted (`dropped`): when the bus refuses or is closed, or when more than `maxQueuedBytes`
 * wait for it (the oldest entries go first).
 */
import { deflateSync } from "node:zlib";
import { Clock, Effect, Fiber, type Context, type Scope } from "effect";
import type { Bus, EntryFields } from "../bus/bus.ts";
import { signEntry, type HmacKey } from "../protocol/entry.ts";
import { TelemetryByteEncoding } from "../protocol/fast/telemetry-batch.ts";
import { fastPaths } from "../protocol/fast/switch.ts";
import { isLayerId, streams as streamNames } from "../protocol/streams.ts";
import type { BatchWriter, TelemetryEncoding } from "./batch.ts";
import { TelemetryMessageEncoding } from "./message-batch.ts";
import { resolveTelemetryOptions, type ResolvedTelemetryPublisherOptions, type TelemetryPublisherOptions } from "./options.ts";
import { checkRecords, checkWindow, type ReportWindow, type SeedRecords, type WindowInfo } from "./records.ts";

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
  readonly sink: (layerId: string, step: number, rows: Float32Array, columns: readonly string[]) => void;
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
  /** The deployment's key: entries are signed (docs/protocol.md `sig`). */
  readonly hmacKey?: HmacKey;
}

/** A layer's batch being filled, by whichever encoding the switch chose when it opened. */
interface OpenBatch {
  readonly layerId: string;
  readonly encoding: TelemetryEncoding<unknown>;
  readonly writer: BatchWriter<unknown>;
  /** Reports closed into it, and their records. */
  reports: number;
  records: number;
  /** Records in the report in hand. */
  inReport: number;
  /** The first window in it: a claim-check reference speaks for the batch with it. */
  first: ReportWindow | null;
  lastWindowEnd: number;
  /** When its first report was closed (Clock ms): it waits batchWindowMs from then. */
  openedAt: number;
}

interface Sealed {
  readonly layerId: string;
  readonly fields: EntryFields;
  readonly records: number;
  /** Bytes of `data`, counted in queuedBytes while it waits. */
  readonly bytes: number;
  /** The reference's window when the entry goes by claim check. */
  readonly claim: ReportWindow | null;
  /** Hands the batch buffer `data` lies in back once the bus holds a copy; null when it may not be used again. */
  readonly release: (() => void) | null;
}

/** Starts a publisher in the current Scope; closing the Scope flushes what is open. */
export const makeTelemetryPublisher = (bus: Bus, config: TelemetryPublisherConfig = {}): Effect.Effect<TelemetryPublisher, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Clock.Clock;
    // Batch timers and bus calls run with the caller's services: its Clock above all.
    const context = yield* Effect.context<never>();
    const publisher = yield* Effect.acquireRelease(
      Effect.sync(() => new Publisher(bus, resolveTelemetryOptions(config), config.hmacKey, clock, context)),
      (p) => p.close(),
    );
    return publisher.api;
  });

class Publisher {
  private readonly names;
  /** The two ways of writing a batch: bytes by hand (a fast path), or messages through the protocol. */
  private readonly bytes: TelemetryByteEncoding;
  private readonly messages: TelemetryMessageEncoding;
  private readonly open = new Map<string, OpenBatch>();
  private readonly lastStep = new Map<string, number>();
  private readonly queue: Sealed[] = [];
  private timer: Fiber.Fiber<void> | null = null;
  private readonly backlogWaiters: { readonly bytes: number; readonly resume: () => void }[] = [];
  private pumping: Promise<void> | null = null;
  private closed = false;
  private readonly s = { records: 0, recordsWritten: 0, entries: 0, dropped: 0, claims: 0, bytes: 0, rawBytes: 0, queuedBytes: 0, errors: 0, lastError: null as string | null };

  constructor(
    private readonly bus: Bus,
    private readonly o: ResolvedTelemetryPublisherOptions,
    private readonly hmacKey: HmacKey | undefined,
    private readonly clock: Clock.Clock,
    private readonly context: Context.Context<never>,
  ) {
    this.names = streamNames(o.namespace, o.topology);
    const compression = o.compression === "deflate" ? "deflate" : null;
    this.bytes = new TelemetryByteEncoding(o.source, compression, o.maxEntryBytes);
    this.messages = new TelemetryMessageEncoding(o.source, compression, this.bytes.reserve);
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

  private now(): number {
    return this.clock.currentTimeMillisUnsafe();
  }

  private publishWindow(layerId: string, info: WindowInfo, input: SeedRecords): number {
    if (!isLayerId(layerId)) throw new RangeError(`layer id ${JSON.stringify(layerId)} is invalid: use 1 to 64 of [A-Za-z0-9_-]`);
    const records = checkRecords(input);
    if (this.closed) {
      this.s.dropped += records.count;
      return 0;
    }
    const window = checkWindow(layerId, info, records.count);
    const encoding: TelemetryEncoding<unknown> = fastPaths() ? this.bytes : this.messages;
    const prepared = encoding.prepare(window, records);
    const now = this.now();
    const { batchSize, maxEntryBytes } = this.o;
    let batch = this.openBatch(layerId, encoding);
    batch.writer.beginReport(prepared, now);
    for (let i = 0; i < records.count; i++) {
      if (batch.records + batch.inReport >= batchSize) batch = this.cut(batch, window, prepared, now);
      batch.writer.addRecord(i);
      batch.inReport++;
      // size counts the room for a TelemetryBatch head too, so the entry stays within the bound either way.
      if (batch.writer.size > maxEntryBytes && (batch.inReport > 1 || batch.reports > 0)) {
        batch.writer.dropRecord();
        batch.inReport--;
        batch = this.cut(batch, window, prepared, now);
        batch.writer.addRecord(i);
        batch.inReport++;
      }
    }
    // The report in hand holds the window's last records, or none when it has none: a window
    // without seeds still goes out, as it may carry the epoch tick.
    this.closeReport(batch, window, now);
    this.s.records += records.count;
    if (batch.records >= batchSize || this.o.batchWindowMs === 0) this.seal(batch);
    else this.arm();
    return records.count;
  }

  /**
   * Closes the report in hand into the batch (unless it holds no seed), seals the batch, and goes
   * on with a new report of the same window in a new batch.
   */
  private cut(batch: OpenBatch, window: ReportWindow, prepared: unknown, now: number): OpenBatch {
    if (batch.inReport > 0) this.closeReport(batch, window, now);
    else batch.writer.dropReport();
    this.seal(batch);
    const next = this.openBatch(batch.layerId, batch.encoding);
    next.writer.beginReport(prepared, now);
    return next;
  }

  private openBatch(layerId: string, encoding: TelemetryEncoding<unknown>): OpenBatch {
    let batch = this.open.get(layerId);
    // The switch was turned since this batch opened: one entry is written one way.
    if (batch !== undefined && batch.encoding !== encoding) {
      this.seal(batch);
      batch = undefined;
    }
    if (batch === undefined) {
      batch = { layerId, encoding, writer: encoding.open(layerId), reports: 0, records: 0, inReport: 0, first: null, lastWindowEnd: 0, openedAt: 0 };
      this.open.set(layerId, batch);
    }
    return batch;
  }

  private closeReport(batch: OpenBatch, window: ReportWindow, now: number): void {
    batch.writer.endReport(batch.inReport);
    if (batch.reports === 0) batch.openedAt = now;
    batch.reports++;
    batch.records += batch.inReport;
    batch.inReport = 0;
    batch.first ??= window;
    batch.lastWindowEnd = window.window[1];
  }

  /** Turns an open batch into an entry in the queue. */
  private seal(batch: OpenBatch): void {
    this.open.delete(batch.layerId);
    if (batch.reports === 0) return;
    const deflate = this.o.compression === "deflate";
    const { raw, release } = batch.writer.seal(batch.reports, this.now());
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
    const claim: ReportWindow | null = data.length > this.o.claimCheckThreshold ? { ...batch.first!, window: [batch.first!.window[0], batch.lastWindowEnd] } : null;
    // Deflate made a copy: the buffer is free now. Otherwise it is the entry's data until written,
    // and for ever on an in-process bus, which keeps the very bytes it is given.
    if (deflate) release?.();
    const keep = deflate || claim !== null || this.bus.inProcess ? null : (release ?? null);
    this.queue.push({ layerId: batch.layerId, fields: fields as EntryFields, records: batch.records, bytes: data.length, claim, release: keep });
    this.s.queuedBytes += data.length;
    while (this.s.queuedBytes > this.o.maxQueuedBytes && this.queue.length > 1) {
      const oldest = this.queue.shift()!;
      this.s.queuedBytes -= oldest.bytes;
      this.s.dropped += oldest.records;
      oldest.release?.();
    }
    this.backlogShrank();
    this.kick();
  }

  /**
   * Seals batches that have waited batchWindowMs, on one timer for all layers, set for the
   * earliest. A batch opened later is due later, so a timer already set is never too late.
   */
  private arm(): void {
    if (this.timer !== null || this.closed) return;
    let due = Number.POSITIVE_INFINITY;
    for (const batch of this.open.values()) if (batch.reports > 0) due = Math.min(due, batch.openedAt + this.o.batchWindowMs);
    if (due === Number.POSITIVE_INFINITY) return;
    // The wait is measured when the fiber runs, so a fiber started late does not wait longer.
    const wait = Effect.suspend(() => Effect.sleep(Math.max(0, due - this.now())));
    this.timer = Effect.runForkWith(this.context)(Effect.andThen(wait, Effect.sync(() => this.sealDue())));
  }

  private sealDue(): void {
    this.timer = null;
    const now = this.now();
    for (const batch of [...this.open.values()]) {
      if (batch.reports > 0 && now - batch.openedAt >= this.o.batchWindowMs) this.seal(batch);
    }
    this.arm();
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
        this.s.queuedBytes -= head.bytes;
        this.backlogShrank();
        await this.writeClaim(head);
        continue;
      }
      let n = 0;
      while (n < this.queue.length && n < this.o.entriesPerWrite && this.queue[n]!.claim === null) n++;
      const batch = this.queue.splice(0, n);
      for (const e of batch) this.s.queuedBytes -= e.bytes;
      this.backlogShrank();
      const exit = await Effect.runPromiseExitWith(this.context)(
        this.bus.publishMany(
          batch.map((e) => ({ stream: this.names.telemetry(e.layerId), fields: e.fields })),
          this.o.maxLen,
        ),
      );
      if (exit._tag === "Success") {
        batch.forEach((e, i) => {
          this.written(e);
          // An empty id: the bus holds the entry for later (Redis away), buffer and all.
          if (exit.value[i] !== "") e.release?.();
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
    const reference = (id: string): EntryFields => {
      const claim = { key: claimKey, id, type: e.fields.type, enc: e.fields.enc as string, bytes: e.fields.data.length, records: e.records };
      const data = (fastPaths() ? this.bytes : this.messages).reference(e.claim!, claim, this.now());
      const fields: Record<string, Uint8Array | string> = { data, type: "LayerHealthReport", enc: "msgpack" };
      if (hmacKey !== undefined) fields.sig = signEntry(hmacKey, stream, "LayerHealthReport", data);
      return fields as EntryFields;
    };
    const outcome = await Effect.runPromiseExitWith(this.context)(
      Effect.gen(function* () {
        const id = yield* bus.publish(claimKey, e.fields, o.claimMaxLen);
        if (id === "") return false;
        yield* bus.publish(stream, reference(id), o.maxLen);
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

  /** Windows handed over from now on are dropped and counted; what is open is sealed and written. */
  close(): Effect.Effect<void> {
    return Effect.gen({ self: this }, function* () {
      this.closed = true;
      if (this.timer !== null) yield* Fiber.interrupt(this.timer);
      this.timer = null;
      yield* Effect.promise(() => this.flush());
    });
  }
}
