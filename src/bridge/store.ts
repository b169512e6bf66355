/**
 * What a layer keeps on the bus besides its streams, and how it is read back:
 *
 * - `P.state.layer.{L}`: each seed's persisted snapshot (msgpack), field = seed id in decimal;
 *   a seed without one is as it started (DORMANT).
 * - `P.meta.layer.{L}`: `generation` (a random id written once, when the layer is first stored;
 *   every commit requires it, so a Redis that lost its data is noticed instead of written over),
 *   `layer` (the layer's record: epoch count and the emergency stop in force, msgpack), and one
 *   `commit.{consumer}` token per consumer (the last commit it made).
 * - `P.results.layer.{L}` / `P.results_old.layer.{L}`: the dedupe table of answers by message id.
 *
 * Snapshots read back are checked against a Schema: a store written by something else is a
 * clear error, not a layer in a state nobody can explain.
 */
import { Effect, Result, Schema } from "effect";
import type { Bus, BusError, DeferredBytes } from "../bus/bus.ts";
import { GRAFTING_STRATEGIES, SEED_STATES } from "../../machines/lifecycle.ts";
import type { PersistedSeed } from "../../machines/seed.ts";
import { decodeBody, encodeBody } from "../protocol/codec.ts";
import { GROUPS, type Streams } from "../protocol/streams.ts";
import type { LayerRecord } from "../runtime/layer-host.ts";

export interface LayerKeys {
  readonly control: string;
  readonly all: string;
  /** The group each layer reads P.control.all in, so every layer sees every entry once. */
  readonly allGroup: string;
  readonly telemetry: string;
  /** The telemetry stream every layer reads (the reference topology's `P.telemetry.batch`), in group `allGroup`; absent under esper's. */
  readonly telemetryShared?: string;
  readonly events: string;
  readonly state: string;
  readonly results: string;
  readonly resultsOld: string;
  readonly meta: string;
  readonly dlq: string;
  readonly dlqAll: string;
  /** The layer's ownership lease (Bus.lease) and its token counter: one owner commits at a time. */
  readonly lease: string;
  readonly fence: string;
  /** The token counter of the leading Tamiyo's lease (shared by every layer): a command of an older token is a deposed leader's. */
  readonly leaderFence: string;
}

export const layerKeys = (names: Streams, layerId: string): LayerKeys => ({
  control: names.control(layerId),
  all: names.controlAll,
  allGroup: `${GROUPS.kasmina}.${layerId}`,
  telemetry: names.telemetry(layerId),
  ...(names.reference !== undefined ? { telemetryShared: names.reference.telemetryBatch } : {}),
  events: names.events(layerId),
  state: names.state(layerId),
  results: names.results(layerId),
  resultsOld: names.resultsOld(layerId),
  meta: names.layerKey("meta", layerId),
  dlq: names.dlq(layerId),
  dlqAll: names.dlqAll,
  lease: names.layerKey("lease", layerId),
  fence: names.layerKey("fence", layerId),
  leaderFence: names.leaderLease.counter,
});

export const GENERATION_FIELD = "generation";
export const RECORD_FIELD = "layer";
export const markerField = (consumer: string): string => `commit.${consumer}`;

/** A value for a hash, encoded only when a bus needs the bytes (MemoryBus: maybe never). A class: no closure per value. */
class Deferred implements DeferredBytes {
  constructor(private readonly value: unknown) {}
  encode(): Uint8Array {
    return encodeBody(this.value, "msgpack");
  }
}
/** Snapshots and answers are immutable values, so they can be encoded later. */
export const deferredValue = (value: unknown): DeferredBytes => new Deferred(value);

export const recordValue = (record: LayerRecord): Uint8Array =>
  encodeBody({ epoch: record.epoch, stop_reason: record.stopReason, ...((record.leaderToken ?? 0) > 0 ? { leader_token: record.leaderToken } : {}) }, "msgpack");

const Finite = Schema.Finite;
const PersistedSeedSchema = Schema.Struct({
  state: Schema.Literals(SEED_STATES),
  context: Schema.Struct({
    seedId: Schema.Int,
    blueprintId: Schema.NullOr(Schema.String),
    strategy: Schema.Literals(GRAFTING_STRATEGIES),
    alpha: Finite,
    epoch: Finite,
    enteredAt: Finite,
    errorCount: Finite,
    metrics: Schema.Record(Schema.String, Schema.Number),
    history: Schema.Array(
      Schema.Struct({
        from: Schema.Literals(SEED_STATES),
        to: Schema.Literals(SEED_STATES),
        forced: Schema.Boolean,
        reason: Schema.String,
        epochs: Finite,
        at: Schema.NullOr(Finite),
      }),
    ),
  }),
});
const decodeSeedShape = Schema.decodeUnknownResult(PersistedSeedSchema);
const RecordSchema = Schema.Struct({ epoch: Finite, stop_reason: Schema.NullOr(Schema.String), leader_token: Schema.optional(Finite) });
const decodeRecordShape = Schema.decodeUnknownResult(RecordSchema);

/** A stored snapshot, or why it is not one. */
export const readSeed = (bytes: Uint8Array, seedId: number): Result.Result<PersistedSeed, string> => {
  let parsed: unknown;
  try {
    parsed = decodeBody(bytes, "msgpack");
  } catch (error) {
    return Result.fail(`seed ${seedId}: not msgpack (${error instanceof Error ? error.message : String(error)})`);
  }
  const shaped = decodeSeedShape(parsed);
  if (Result.isFailure(shaped)) return Result.fail(`seed ${seedId}: not a seed snapshot: ${shaped.failure.message}`);
  if (shaped.success.context.seedId !== seedId) return Result.fail(`seed ${seedId}: the snapshot is seed ${shaped.success.context.seedId}'s`);
  return Result.succeed(shaped.success as PersistedSeed);
};

/** The stored record, or why it is not one; absent: a layer with nothing recorded yet. */
export const readRecord = (bytes: Uint8Array | undefined): Result.Result<LayerRecord, string> => {
  if (bytes === undefined) return Result.succeed({ epoch: 0, stopReason: null, leaderToken: 0 });
  try {
    const shaped = decodeRecordShape(decodeBody(bytes, "msgpack"));
    return Result.isSuccess(shaped)
      ? Result.succeed({ epoch: shaped.success.epoch, stopReason: shaped.success.stop_reason, leaderToken: shaped.success.leader_token ?? 0 })
      : Result.fail(`the layer record is not one: ${shaped.failure.message}`);
  } catch (error) {
    return Result.fail(`the layer record is not msgpack (${error instanceof Error ? error.message : String(error)})`);
  }
};

export const text = (bytes: Uint8Array | null | undefined): string | null => (bytes === null || bytes === undefined ? null : Buffer.from(bytes).toString("utf8"));

/**
 * The seeds a layer stored that read back as snapshots, by seed id (any other is as it started).
 * For readers that follow a layer (a trainer, a new leading Tamiyo); the layer's own restore is
 * stricter and refuses a store it cannot read whole (restore.ts).
 */
export const storedSeeds = (bus: Bus, keys: LayerKeys): Effect.Effect<Map<number, PersistedSeed>, BusError> =>
  Effect.map(bus.hgetall(keys.state), (stored) => {
    const seeds = new Map<number, PersistedSeed>();
    for (const [field, bytes] of Object.entries(stored)) {
      const seed = readSeed(bytes, Number(field));
      if (Result.isSuccess(seed)) seeds.set(seed.success.context.seedId, seed.success);
    }
    return seeds;
  });
