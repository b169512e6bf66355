/**
 * The mailbox bridge: a layer's streams -> its layer actor (LayerHost) -> its event stream.
 *
 * A batch read from `P.control.layer.{L}` (group `kasmina`) or `P.control.all` (group
 * `kasmina.{L}`, so every layer sees every entry once) goes through four pure steps:
 *
 *     decode (decode.ts) -> admit (admit.ts) -> settle (settle.ts, the layer decides) -> plan (plan.ts)
 *
 * and this file is the thin shell around them: it reads, commits the plan (commit-loop.ts),
 * and puts the layer back when a commit does not land. `P.telemetry.layer.{L}` (group
 * `kasmina`) brings the trainer's epoch ticks and guard metrics (intake.ts). Under the reference
 * topology (options.topology) the streams have the reference's names, answers and events are
 * also copied where reference readers wait for them (protocol/reference.ts), and telemetry also
 * comes from `P.telemetry.batch` (group `kasmina.{L}`, shared by every layer).
 *
 * What it guarantees (docs/protocol.md "Consumer groups and delivery"):
 * - Exactly one answer per command and each command's effects once: answers, snapshots, events
 *   and acks land in one atomic commit, and the dedupe table in the same commit makes a
 *   redelivery harmless.
 * - Stream order, whatever happens: a worker takes over what its group held pending when it
 *   starts (under any consumer name) and applies it first; a batch is held until its commit
 *   lands or its entries are dead-lettered, and nothing newer is read meanwhile.
 * - An emergency stop overtakes any backlog: behind a full batch, the bridge looks ahead in the
 *   layer's stream for stops (Bus.scanFor) and applies them first (they are removed from the
 *   stream, never delivered again); P.control.all is drained before the layer's own stream at
 *   start. Growth commands queued behind a stop are then answered `emergency_stopped`.
 * - A Redis that lost the layer's data is noticed (the generation marker every commit requires,
 *   checked again every `houseKeepingMs`): the bridge stops with LayerDataLost.
 */
import { hostname } from "node:os";
import { Clock, Deferred, Effect, Schedule, Semaphore, type Scope } from "effect";
import { compareStreamIds, parseStreamId } from "../bus/stream-id.ts";
import { entryBytes, type Bus, type BusError, type CommitOp, type Entry, type Reader } from "../bus/bus.ts";
import { isNoGroup } from "../bus/redis-reader.ts";
import { initialSeed, type PersistedSeed } from "../../machines/seed.ts";
import { decodeEntry, encodeEntry, encodeEntryInProcess, maxEntryBytes } from "../protocol/entry.ts";
import { newMessageId } from "../protocol/message-id.ts";
import type { CommandResult, Message } from "../protocol/messages.ts";
import { referenceCopies } from "../protocol/reference.ts";
import { GROUPS, streams } from "../protocol/streams.ts";
import { resultFor, seedIdOf } from "../runtime/answer.ts";
import { boundedMessage } from "../runtime/bounded-message.ts";
import { leaderOf } from "../runtime/orders.ts";
import type { LayerHost } from "../runtime/layer-host.ts";
import { TelemetryScanner } from "../protocol/fast/telemetry-scanner.ts";
import { decodeTelemetryEntry, type TelemetryContent } from "../telemetry/decode.ts";
import { admit, readmit, type Admission } from "./admit.ts";
import { awaitDependencies } from "./causal.ts";
import { commitUntilLanded, type CommitPolicy } from "./commit-loop.ts";
import { decodeRead, decodeReads, type Read } from "./decode.ts";
import { intakeOf } from "./intake.ts";
import { resolveBridgeOptions, type BridgeOptions } from "./options.ts";
import { planCommit, sameStore, type CommitMarker } from "./plan.ts";
import { dataLost, generationHolds, LayerDataLost, recentWritesLost, restoreLayer, type BridgeRestoreError, type Stored } from "./restore.ts";
import { againAnswer, settle, type Settled, type Settlement } from "./settle.ts";
import { SettledMarks } from "./settled-marks.ts";
import { deferredValue, layerKeys, markerField, RECORD_FIELD, recordValue, text, type LayerKeys } from "./store.ts";
import { SourceRates } from "./source-rates.ts";

/** Counters of one layer's bridge since it started (`LayerBridge.stats()`, `EsperSystem.bridgeStats(layerId)`). */
export interface BridgeStats {
  /** Control entries read and settled (answered, dead-lettered, or recognised as duplicates). */
  readonly entries: number;
  /** Commands handed to the layer and answered by it, whether its machines accepted or refused them. */
  readonly applied: number;
  /** Copies of a command already answered (a redelivery, a re-send), answered again with the first result and not applied. */
  readonly duplicates: number;
  /** Entries moved to the dead-letter stream (undecodable, too large, bad signature, too many deliveries...). */
  readonly deadLettered: number;
  /** Atomic commits that landed (one per batch: answers, events, snapshots and acks together). */
  readonly commits: number;
  /** Emergency stops applied ahead of the commands queued before them. */
  readonly stopsAhead: number;
  /** Telemetry entries taken in (epoch ticks, guard metrics), and those that could not be read. */
  readonly telemetry: number;
  readonly telemetryRejected: number;
  /** Batches held back while their commit waited for Redis. */
  readonly waits: number;
}

/**
 * One layer served on a bus, as `runLayerBridge` starts it (what `esper worker` runs per layer):
 * its control streams applied to `host`, answered on its event stream. It runs until its Scope
 * closes, or stops for good with LayerDataLost (`failed`).
 */
export interface LayerBridge {
  readonly layerId: string;
  /** The LayerHost the bridge applies commands to, restored from the store when the bridge started. */
  readonly host: LayerHost;
  /** Its counters as they are now. */
  readonly stats: () => BridgeStats;
  /**
   * Succeeds once the bridge has settled the entry `id` of `stream` (and everything before it),
   * or has stopped (its Scope closed, or its layer's data was lost): nobody waits forever.
   */
  readonly settled: (stream: string, id: string) => Effect.Effect<void>;
  /** Fails when the bridge has stopped for good because the layer's data was lost; never succeeds. */
  readonly failed: Effect.Effect<never, LayerDataLost>;
  /**
   * Resolves when the bridge stopped because it no longer holds the layer's lease (options.fence):
   * another owner took the layer over, and this bridge's commit was refused whole.
   */
  readonly fenced: Effect.Effect<void>;
  /** The generation marker of the store the layer was restored from (see BridgeOptions.generation). */
  readonly generation: string;
}

const later = (a: string, b: string): string => (compareStreamIds(parseStreamId(a)!, parseStreamId(b)!) >= 0 ? a : b);

/**
 * Starts the bridge for one layer in the current Scope: restores the layer from the store, takes
 * over what its groups hold pending, applies stops queued for it, and reads until the Scope
 * closes (the batch in hand is finished and committed first; see commit-loop.ts for how long).
 */
export const runLayerBridge = (bus: Bus, host: LayerHost, options: BridgeOptions = {}): Effect.Effect<LayerBridge, BusError | BridgeRestoreError | LayerDataLost, Scope.Scope> =>
  Effect.gen(function* () {
    const o = resolveBridgeOptions(options, `${hostname()}-${process.pid}`);
    const clock = yield* Clock.Clock;
    const now = () => clock.currentTimeMillisUnsafe();
    const layerId = host.layerId;
    const names = streams(o.namespace, o.topology);
    const keys: LayerKeys = layerKeys(names, layerId);
    // Shared streams (P.control.all, the reference's P.telemetry.batch) are read in a group per layer.
    const groupOf = (stream: string) => (stream === keys.all || stream === keys.telemetryShared ? keys.allGroup : GROUPS.kasmina);
    const stats = { entries: 0, applied: 0, duplicates: 0, deadLettered: 0, commits: 0, stopsAhead: 0, telemetry: 0, telemetryRejected: 0, waits: 0 };
    const limit = maxEntryBytes(o.maxBytes);
    const decodeOptions = { maxBytes: o.maxBytes, hmacKey: o.hmacKey, maxSignedAgeMs: o.maxSignedAgeMs };
    const rates = new SourceRates({ perSecond: o.ratePerSource });
    const lost = yield* Deferred.make<never, LayerDataLost>();
    const fenced = yield* Deferred.make<void>();
    const tokenField = markerField(o.consumer);

    const stored: Stored = yield* restoreLayer(bus, layerId, host.numSeeds, keys, tokenField, o.generation);
    host.restore(stored.seeds, stored.record);

    // Everything written stays within the size every reader accepts (bounded-message.ts). In
    // process an answer travels as the object it is, frozen: every reader gets that very object.
    const encodeOptions = { stream: keys.events, codec: o.codec, ...(o.hmacKey !== undefined ? { hmacKey: o.hmacKey } : {}) };
    const inProcessOptions = { ...encodeOptions, trusted: true };
    const encode = bus.inProcess
      ? (message: Message) => encodeEntryInProcess(deepFreeze(message), inProcessOptions)
      : (message: Message) => boundedMessage(message, o.maxBytes, (m) => encodeEntry(m, encodeOptions));
    // The reference topology: answers and events copied where reference readers wait for them, written as the reference writes.
    const copies =
      names.reference === undefined
        ? undefined
        : (message: Message, commandType: string | undefined) =>
            referenceCopies(names, layerId, message, commandType).map((copy) => ({
              stream: copy.stream,
              fields: encodeEntry(copy.message, { stream: copy.stream, codec: "reference", ...(o.hmacKey !== undefined ? { hmacKey: o.hmacKey } : {}) }),
            }));
    const planBase = { keys, groupOf, encode, ...(copies !== undefined ? { copies } : {}), maxLen: o.maxLen, dedupeWindow: o.dedupeWindow };

    /** The layer back to what the store holds, for the seeds a batch changed. */
    const rollback = (changed: Iterable<number>) => {
      const seeds = new Map<number, PersistedSeed>();
      for (const seedId of changed) seeds.set(seedId, stored.seeds.get(seedId) ?? initialSeed(seedId));
      host.restore(seeds, stored.record);
    };
    const remember = (changed: Iterable<number>, record: Settlement["record"]) => {
      for (const seedId of changed) stored.seeds.set(seedId, host.seed(seedId));
      if (record !== undefined) stored.record = record;
    };
    /** The next commit's token, chained to the last one that landed. */
    const nextMarker = (): CommitMarker => ({ field: tokenField, previous: stored.lastCommit, token: newMessageId(), ...(o.fence !== undefined ? { fence: o.fence } : {}) });
    const landed = (m: CommitMarker) => Effect.map(bus.hmget(keys.meta, [tokenField]), ([held]) => text(held) === m.token);
    const policy = (what: string): CommitPolicy => ({ maxCommitAttempts: o.maxCommitAttempts, maxRetryDelayMs: o.maxRetryDelayMs, what: `layer ${layerId}: ${what}` });
    const isLost = (error: BusError) => error.reason === "conflict" && error.key === keys.meta;
    /** A commit refused on the lease: another owner holds the layer now, and this bridge wrote nothing. */
    const isFenced = (error: BusError) => o.fence !== undefined && error.reason === "conflict" && error.key === keys.lease;
    const marks = new SettledMarks();
    yield* Effect.addFinalizer(() => marks.release);
    const stop = (error: LayerDataLost) => Effect.andThen(Effect.andThen(Deferred.fail(lost, error), marks.release), Effect.interrupt);
    const stopFenced = Effect.andThen(Effect.andThen(Deferred.succeed(fenced, undefined), marks.release), Effect.interrupt);
    const failLost = (what: string) => stop(dataLost(layerId, what));
    /** A commit's meta precondition failed: which one says what was lost. */
    const failAfterConflict = Effect.flatMap(Effect.orElseSucceed(generationHolds(bus, keys, stored.generation), () => false), (holds) =>
      holds ? stop(recentWritesLost(layerId, o.consumer)) : failLost("a commit found its generation marker gone"),
    );

    /** What is stored for the batch's message ids (a redelivery, or a copy answered meanwhile). Waits for Redis. */
    const readKnown = (ids: readonly string[]): Effect.Effect<Map<string, CommandResult>> => {
      const asked = ids.length === 0 ? ["-"] : ids;
      const read = Effect.zipWith(bus.hmget(keys.results, asked), bus.hmget(keys.resultsOld, asked), (current, old) => {
        const known = new Map<string, CommandResult>();
        asked.forEach((id, i) => {
          const bytes = current[i] ?? old[i];
          if (!bytes) return;
          const decoded = decodeEntry(keys.events, { data: bytes, type: "CommandResult", enc: "msgpack" });
          // Answered all the same: applying it again would only meet the stored answer at commit, for ever.
          known.set(
            id,
            decoded._tag === "Success" && decoded.success.message_type === "CommandResult"
              ? decoded.success
              : resultFor({ message_id: id }, { source: host.source, layerId, now: now(), elapsedMs: 0 }, null, "internal", `this command was answered before, but the stored answer cannot be read (${keys.results}); see the event stream for it`, {}),
          );
        });
        return known;
      });
      return read.pipe(Effect.retry({ schedule: Schedule.spaced(Math.min(500, o.maxRetryDelayMs)), while: (e) => e.reason !== "closed" }), Effect.orDie);
    };

    /**
     * Gives up on a batch whose commit keeps failing: its entries go to the dead-letter stream,
     * each command answered `internal` (or as it was to be answered, for entries already bound
     * for the letters). When even that fails (the event stream is what is broken), the letters
     * go without the answers: they are never lost, and `esper dlq` shows why.
     */
    const giveUp = (admissions: readonly Admission[], error: BusError, interruptible: <A, E>(e: Effect.Effect<A, E>) => Effect.Effect<A, E>) =>
      Effect.gen(function* () {
        const why = `the layer could not commit this entry: ${error.message}`;
        const at = now();
        const situation = { source: host.source, layerId, now: at, elapsedMs: 0 };
        yield* Effect.logError(`layer ${layerId}: giving up on a batch of ${admissions.length} entries after ${o.maxCommitAttempts} failed commits (${error.message}); they go to the dead-letter stream`);
        const letterOf = (a: Admission, answered: boolean): Settled => {
          switch (a.kind) {
            case "skip":
              return { kind: "ack", read: a.read };
            case "dead":
              return answered && a.answer !== undefined ? { kind: "dead", read: a.read, code: a.code, error: a.error, answer: a.answer } : { kind: "dead", read: a.read, code: a.code, error: a.error };
            case "answered":
              return answered ? { kind: "dead", read: a.read, code: "internal", error: why, answer: againAnswer(a.before, at) } : { kind: "dead", read: a.read, code: "internal", error: why };
            case "refuse":
            case "apply":
              return answered
                ? { kind: "dead", read: a.read, code: "internal", error: why, answer: resultFor(a.command, situation, seedIdOf(a.command), "internal", `${why}; it was not applied and is in the dead-letter stream`, {}) }
                : { kind: "dead", read: a.read, code: "internal", error: why };
          }
        };
        // Dead-lettering waits for Redis like any commit, and is tried for as long as it takes.
        for (let answered = true; ; ) {
          const settlement: Settlement = { settled: admissions.map((a) => letterOf(a, answered)), changed: new Set(), record: undefined };
          const m = nextMarker();
          const ops = planCommit(settlement, { ...planBase, generation: stored.generation, snapshots: new Map(), marker: m, now: at });
          const landing = yield* commitUntilLanded(bus, ops, landed(m), policy(`dead-lettering ${admissions.length} entries`), interruptible);
          if (landing.landed) {
            stored.lastCommit = m.token;
            break;
          }
          if (isFenced(landing.error)) return yield* stopFenced;
          if (isLost(landing.error)) return yield* failAfterConflict;
          if (landing.error.reason === "closed") return yield* Effect.interrupt;
          if (answered) {
            answered = false;
            yield* Effect.logError(`layer ${layerId}: dead-lettering with answers failed too (${landing.error.message}); dead-lettering without them`);
            continue;
          }
          yield* Effect.logError(`layer ${layerId}: dead-lettering failed too (${landing.error.message}); trying again`);
          yield* interruptible(Effect.sleep(o.maxRetryDelayMs));
        }
        stats.deadLettered += admissions.filter((a) => a.kind !== "skip").length;
        stats.entries += admissions.length;
      });

    // One batch at a time per layer: apply order = commit order = event stream order.
    const lock = yield* Semaphore.make(1);

    /** Settles and commits one batch of control entries: see the file comment. */
    const handle = (reads: readonly Read[]): Effect.Effect<void> =>
      reads.length === 0
        ? Effect.void
        : Semaphore.withPermit(
            lock,
            Effect.uninterruptibleMask((interruptible) =>
              Effect.gen(function* () {
                const at = now();
                const decoded = decodeReads(reads, decodeOptions);
                const ids = decoded.flatMap((d) => (d.ok && "message_id" in d.message ? [d.message.message_id] : []));
                // A redelivery was likely answered before it came again: read what is stored first.
                const known = reads.some((r) => r.entry.deliveries > 1) ? yield* interruptible(readKnown(ids)) : null;
                // Commands of a leading Tamiyo: the layer learns the newest leader's token first, so a deposed one is refused
                // even before her successor has spoken to it (read only when a command carries a token; Redis away: as before).
                if (decoded.some((d) => d.ok && leaderOf(d.message) !== undefined)) {
                  host.noteLeader(yield* interruptible(bus.fencingToken(keys.leaderFence).pipe(Effect.orElseSucceed(() => 0))));
                }
                let admissions = admit(decoded, { layerId, allStream: keys.all, now: at, maxDeliveries: o.maxDeliveries, known, rates, ratePerSource: o.ratePerSource, source: host.source });
                if (o.ordering === "causal") admissions = yield* interruptible(awaitDependencies(bus, admissions, { layerId, keys, names, now, pollMs: o.dependencyPollMs }));
                for (;;) {
                  const settlement = settle(admissions, host, { now: at });
                  const m = nextMarker();
                  const snapshots = new Map([...settlement.changed].map((seedId) => [seedId, host.seed(seedId)] as const));
                  const ops = planCommit(settlement, { ...planBase, generation: stored.generation, snapshots, marker: m, now: at });
                  const landing = yield* commitUntilLanded(bus, ops, landed(m), policy(`batch of ${reads.length} entries`), interruptible).pipe(
                    Effect.onInterrupt(() => Effect.sync(() => rollback(settlement.changed))),
                  );
                  if (landing.landed) {
                    stored.lastCommit = m.token;
                    remember(settlement.changed, settlement.record);
                    count(settlement);
                    return yield* markRead(reads);
                  }
                  rollback(settlement.changed);
                  if (isFenced(landing.error)) return yield* stopFenced;
                  if (isLost(landing.error)) return yield* failAfterConflict;
                  // The bus is closing under us: the batch stays pending for whoever reads next.
                  if (landing.error.reason === "closed") return yield* Effect.interrupt;
                  if (landing.error.reason === "conflict") {
                    // Another delivery answered one of these ids meanwhile: settle again with what is stored.
                    admissions = readmit(admissions, yield* interruptible(readKnown(ids)));
                    continue;
                  }
                  yield* giveUp(admissions, landing.error, interruptible);
                  return yield* markRead(reads);
                }
              }),
            ),
          );

    /** The streams a batch was read from are settled through its last entry read in order (one found ahead is not). */
    const markRead = (reads: readonly Read[]) =>
      Effect.forEach(
        [...new Set(reads.map((r) => r.stream))],
        (stream) => {
          const inOrder = reads.filter((r) => r.stream === stream && r.ahead !== true);
          return inOrder.length === 0 ? Effect.void : marks.mark(stream, inOrder[inOrder.length - 1]!.entry.id);
        },
        { discard: true },
      );

    const count = (settlement: Settlement) => {
      stats.commits++;
      for (const s of settlement.settled) {
        stats.entries++;
        if (s.read.ahead === true && s.kind === "answer" && s.applied) stats.stopsAhead++;
        if (s.kind === "dead") stats.deadLettered++;
        else if (s.kind === "answer" && s.applied) stats.applied++;
        else if (s.kind === "answer" && s.result.details.duplicate === true) stats.duplicates++;
      }
    };

    /** Emergency stops for this layer queued in its stream after `after`, looked for without reading the backlog. */
    let scannedThrough = "0-0";
    const stopsAhead = (after: string): Effect.Effect<Read[], BusError> =>
      Effect.gen(function* () {
        let from = later(scannedThrough, after);
        const found: Read[] = [];
        for (;;) {
          const page = yield* bus.scanFor(keys.control, from, "EmergencyStopCommand", o.scanCount, limit);
          for (const entry of page.found) {
            const read: Read = { stream: keys.control, entry: { ...entry, deliveries: 1 }, ahead: true };
            const d = decodeRead(read, decodeOptions);
            // Only what will surely apply goes ahead; anything doubtful is judged in its turn.
            if (d.ok && d.message.message_type === "EmergencyStopCommand" && (d.message.layer_id === null || d.message.layer_id === layerId)) found.push(read);
          }
          if (page.lastId === from) break;
          from = page.lastId;
        }
        scannedThrough = from;
        return found;
      });

    /** Telemetry in: the trainer's epoch count and the seeds' guard metrics, committed with the seeds they changed. */
    const telemetryOptions = { maxBytes: o.maxBytes, ...(o.hmacKey ? { hmacKey: o.hmacKey, requireSig: false } : {}) };
    // Its scratch space is kept from entry to entry.
    const scanner = new TelemetryScanner();
    const handleTelemetry = (stream: string, entries: readonly Entry[]): Effect.Effect<void> =>
      entries.length === 0
        ? Effect.void
        : Semaphore.withPermit(
            lock,
            Effect.uninterruptibleMask((interruptible) =>
              Effect.gen(function* () {
                const contents: TelemetryContent[] = [];
                for (const entry of entries) {
                  const decoded = entry.oversize !== undefined ? undefined : decodeTelemetryEntry(stream, entry.fields, telemetryOptions, scanner);
                  if (decoded?._tag === "Success") contents.push(decoded.success);
                  else stats.telemetryRejected++;
                }
                const intake = intakeOf(layerId, contents);
                const before = host.record;
                const changed = new Set<number>();
                if (intake.epoch !== undefined && intake.epoch > before.epoch) for (const id of host.tick(intake.epoch - before.epoch)) changed.add(id);
                for (const id of host.reportMetrics(intake.metrics)) changed.add(id);
                const record = host.record.epoch !== before.epoch ? host.record : undefined;
                const m = nextMarker();
                const ops: CommitOp[] = sameStore(keys, stored.generation, m);
                if (changed.size > 0) ops.push({ op: "hset", key: keys.state, values: new Map([...changed].map((id) => [String(id), deferredValue(host.seed(id))] as const)) });
                ops.push(
                  { op: "hset", key: keys.meta, values: { [tokenField]: m.token, ...(record !== undefined ? { [RECORD_FIELD]: recordValue(record) } : {}) } },
                  { op: "ack", stream, group: groupOf(stream), ids: entries.map((e) => e.id) },
                );
                const landing = yield* commitUntilLanded(bus, ops, landed(m), policy(`telemetry of ${entries.length} entries`), interruptible).pipe(
                  Effect.onInterrupt(() => Effect.sync(() => rollback(changed))),
                );
                if (!landing.landed) {
                  rollback(changed);
                  if (isFenced(landing.error)) return yield* stopFenced;
                  if (isLost(landing.error)) return yield* failAfterConflict;
                  if (landing.error.reason === "closed") return yield* Effect.interrupt;
                  // Telemetry may be dropped (docs/protocol.md): counted, logged, and acked so the stream moves on.
                  stats.telemetryRejected += entries.length;
                  yield* Effect.logWarning(`layer ${layerId}: dropping ${entries.length} telemetry entries that could not be committed: ${landing.error.message}`);
                  yield* Effect.ignore(bus.ack(stream, groupOf(stream), entries.map((e) => e.id)));
                } else {
                  stored.lastCommit = m.token;
                  remember(changed, record);
                  stats.telemetry += entries.length;
                }
                yield* marks.mark(stream, entries[entries.length - 1]!.id);
              }),
            ),
          );

    /** A read that waits out an unavailable Redis; a vanished group is checked for lost data first. */
    const readFrom = (reader: Reader, stream: string, startId: "0" | "$"): Effect.Effect<readonly Entry[]> =>
      reader.read.pipe(
        Effect.catch((error: BusError) => {
          if (error.reason === "closed") return Effect.interrupt;
          if (isFenced(error)) return stopFenced;
          if (isNoGroup(error)) {
            return Effect.flatMap(Effect.orElseSucceed(generationHolds(bus, keys, stored.generation), () => true), (holds) =>
              holds ? Effect.as(Effect.ignore(bus.ensureGroup(stream, groupOf(stream), startId)), []) : failLost(`the group ${groupOf(stream)} of ${stream} vanished with the marker`),
            );
          }
          return Effect.logWarning(`layer ${layerId}: reading ${stream}: ${error.message}`).pipe(Effect.andThen(Effect.sleep(Math.min(500, o.maxRetryDelayMs))), Effect.as([]));
        }),
      );

    // Fenced on the lease where it shares the stream's slot (not P.control.all): a deposed owner is handed no entry of its successor's.
    const fenceOf = (stream: string) => (o.fence !== undefined && stream !== keys.all ? { fence: { key: keys.lease, owner: o.fence } } : {});
    const openReader = (stream: string, blockMs: number) =>
      bus.reader({ stream, group: groupOf(stream), consumer: o.consumer, count: o.readCount, blockMs, maxEntryBytes: limit, maxBatchBytes: o.readBytes, recreateGroup: false, ...fenceOf(stream) });

    // Groups, then what earlier workers left pending: it is ours now, and read back first.
    yield* bus.ensureGroup(keys.control, GROUPS.kasmina, "0");
    // A layer joins P.control.all and its telemetry from now on: what came before it existed is not its business.
    yield* bus.ensureGroup(keys.all, keys.allGroup, "$");
    const telemetryStreams = keys.telemetryShared === undefined ? [keys.telemetry] : [keys.telemetry, keys.telemetryShared];
    for (const stream of telemetryStreams) yield* bus.ensureGroup(stream, groupOf(stream), "$");
    for (const stream of [keys.control, keys.all, ...telemetryStreams]) yield* bus.takeOver(stream, groupOf(stream), o.consumer);

    // Stops for every layer sent while the layer was down come first, then stops queued in its own backlog.
    yield* Effect.scoped(
      Effect.gen(function* () {
        const all = yield* openReader(keys.all, 0);
        for (let batch = yield* readFrom(all, keys.all, "$"); batch.length > 0; batch = yield* readFrom(all, keys.all, "$")) {
          yield* handle(batch.map((entry) => ({ stream: keys.all, entry })));
        }
      }),
    );
    scannedThrough = (yield* bus.groupInfo(keys.control, GROUPS.kasmina))?.lastDeliveredId ?? "0-0";
    yield* handle(yield* stopsAhead(scannedThrough));

    const controlLoop = (stream: string, startId: "0" | "$") =>
      Effect.gen(function* () {
        const reader = yield* openReader(stream, o.blockMs);
        yield* Effect.forever(
          Effect.gen(function* () {
            const entries = yield* readFrom(reader, stream, startId);
            let reads: Read[] = entries.map((entry) => ({ stream, entry }));
            // A full batch (by count or by bytes) means more waits behind it: any emergency stop there goes first.
            if (stream === keys.control && (entries.length >= o.readCount || entries.reduce((n, e) => n + entryBytes(e.fields), 0) >= o.readBytes)) {
              const ahead = yield* stopsAhead(entries[entries.length - 1]!.id).pipe(Effect.orElseSucceed((): Read[] => []));
              reads = [...ahead, ...reads];
            }
            yield* handle(reads);
          }),
        );
      });
    const telemetryLoop = (stream: string) =>
      Effect.gen(function* () {
        const reader = yield* openReader(stream, o.blockMs);
        yield* Effect.forever(Effect.flatMap(readFrom(reader, stream, "$"), (entries) => handleTelemetry(stream, entries)));
      });

    // Control streams are trimmed of what every group is done with; the marker is checked on the way.
    const houseKeeping = Effect.gen(function* () {
      if (!(yield* generationHolds(bus, keys, stored.generation))) return yield* failLost("the generation marker is gone from its meta key");
      for (const stream of [keys.control, keys.all]) yield* bus.trimDelivered(stream);
    }).pipe(Effect.catch((error: BusError) => Effect.logWarning(`layer ${layerId}: house-keeping: ${error.message}`)));

    yield* Effect.forkScoped(controlLoop(keys.control, "0"));
    yield* Effect.forkScoped(controlLoop(keys.all, "$"));
    for (const stream of telemetryStreams) yield* Effect.forkScoped(telemetryLoop(stream));
    yield* Effect.forkScoped(Effect.repeat(houseKeeping, Schedule.spaced(Math.max(10, o.houseKeepingMs))));

    return { layerId, host, stats: () => ({ ...stats }), settled: (stream, id) => marks.wait(stream, id), failed: Deferred.await(lost), fenced: Deferred.await(fenced), generation: stored.generation };
  });

/**
 * Freezes a message and the maps and lists in it (they are small: a result's details, an event's
 * metrics). Written to allocate nothing: it runs on every answer and event in process.
 */
const deepFreeze = <T>(value: T): T => {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value) && !(value instanceof Uint8Array)) {
    Object.freeze(value);
    if (Array.isArray(value)) for (let i = 0; i < value.length; i++) deepFreeze(value[i]);
    else for (const key in value) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
};

export { BridgeRestoreError, LayerDataLost } from "./restore.ts";
