/**
 * How a bridge finds its layer in the store when it starts: the seeds' snapshots and the layer's
 * record, checked, and the layer's generation marker. A layer seen for the first time gets its
 * marker. A store that holds some of a layer but no marker lost its data (Redis restarted without
 * persistence, or was flushed, after the layer was stored): the bridge refuses to start rather
 * than bring the layer back in a state it never had (DORMANT seeds that had grown, commands
 * applied twice because their answers are gone).
 */
import { Data, Effect, Result } from "effect";
import { newMessageId } from "../protocol/message-id.ts";
import type { Bus, BusError } from "../bus/bus.ts";
import type { PersistedSeed } from "../../machines/seed.ts";
import type { LayerRecord } from "../runtime/layer-host.ts";
import { GENERATION_FIELD, readRecord, readSeed, RECORD_FIELD, text, type LayerKeys } from "./store.ts";

/**
 * A bridge could not start because what the store holds of its layer is not what it can restore:
 * a seed id beyond the layer's seed count (start the worker with the seed count the layer was
 * created with), or a snapshot or layer record written by something else. The message names the
 * key; fix or delete it (`esper layer reset`) and start again. Nothing was written.
 */
export class BridgeRestoreError extends Data.TaggedError("BridgeRestoreError")<{ readonly message: string }> {}

/**
 * The layer's data is gone from Redis while it was being served, or partly gone when it starts.
 * The worker stops: see docs/operations.md "When Redis lost a layer's data".
 */
export class LayerDataLost extends Data.TaggedError("LayerDataLost")<{ readonly layerId: string; readonly message: string }> {}

/**
 * Redis kept the layer but not its latest writes: the last commit this worker made is not there.
 * What Redis holds is still a whole state (commits are atomic), only an older one.
 */
export const recentWritesLost = (layerId: string, consumer: string): LayerDataLost =>
  new LayerDataLost({
    layerId,
    message:
      `Redis lost the latest writes of layer ${layerId}: the last commit this worker made is not in it (Redis restarted from an AOF or RDB ` +
      `behind its memory, e.g. appendfsync everysec, or failed over to a replica that lagged), or another worker with consumer name ` +
      `${consumer} serves this layer. The worker stops instead of going on from a state Redis no longer holds. Start it again: it resumes ` +
      `from what Redis kept, and commands whose commits were lost are applied (and answered) again. Give every worker its own consumer name.`,
  });

export const dataLost = (layerId: string, what: string): LayerDataLost =>
  new LayerDataLost({
    layerId,
    message:
      `Redis lost layer ${layerId}'s data (${what}): it restarted without persistence or was flushed. ` +
      `The worker stops instead of writing over it. Restore Redis from its AOF/RDB backup and start the worker again; ` +
      `or, to start the layer over with every seed DORMANT, delete its keys (esper layer reset --layer ${layerId}) first.`,
  });

/** What the store holds of a layer: the bridge's picture of it, kept current as it commits. */
export interface Stored {
  readonly generation: string;
  readonly seeds: Map<number, PersistedSeed>;
  record: LayerRecord;
  /**
   * The token of the last commit this consumer made (its `commit.{consumer}` field), null before
   * its first. Every commit requires it and writes the next one, so a Redis that lost recent
   * writes is noticed at the next commit.
   */
  lastCommit: string | null;
}

/**
 * Reads the layer back from the store. `markerField`: where this consumer's commit token lives in
 * the meta key; `expected`: the generation this process served the layer from before, if it did.
 */
export const restoreLayer = (
  bus: Bus,
  layerId: string,
  numSeeds: number,
  keys: LayerKeys,
  markerField: string,
  expected?: string,
): Effect.Effect<Stored, BusError | BridgeRestoreError | LayerDataLost> =>
  Effect.gen(function* () {
    const meta = yield* bus.hgetall(keys.meta);
    const state = yield* bus.hgetall(keys.state);
    const seeds = new Map<number, PersistedSeed>();
    for (const field of Object.keys(state)) {
      const seedId = Number(field);
      if (!Number.isInteger(seedId) || seedId < 0 || seedId >= numSeeds) {
        return yield* new BridgeRestoreError({
          message: `${keys.state} holds seed ${field}, but layer ${layerId} has ${numSeeds} seeds; start the worker with the seed count it was created with, or delete the key`,
        });
      }
      const seed = readSeed(state[field]!, seedId);
      if (Result.isFailure(seed)) return yield* new BridgeRestoreError({ message: `${keys.state}: ${seed.failure}; the store was written by something else` });
      seeds.set(seedId, seed.success);
    }
    const record = readRecord(meta[RECORD_FIELD]);
    if (Result.isFailure(record)) return yield* new BridgeRestoreError({ message: `${keys.meta}: ${record.failure}` });

    let generation = text(meta[GENERATION_FIELD]);
    if (expected !== undefined && generation !== expected) {
      return yield* dataLost(layerId, `${keys.meta} holds ${generation === null ? "no generation marker" : `generation ${generation}`}, not the ${expected} this process served it from`);
    }
    if (generation === null) {
      // Something of the layer is stored but not its marker: what held the marker was lost.
      const results = Object.keys(yield* bus.hgetall(keys.results)).length + Object.keys(yield* bus.hgetall(keys.resultsOld)).length;
      if (seeds.size > 0 || Object.keys(meta).length > 0 || results > 0) {
        return yield* dataLost(layerId, `${keys.meta} has no generation marker, but ${seeds.size} seed snapshots and ${results} answers are stored`);
      }
      const fresh = newMessageId();
      yield* bus.commit([
        { op: "expect", key: keys.meta, field: GENERATION_FIELD, value: null },
        { op: "hset", key: keys.meta, values: { [GENERATION_FIELD]: fresh } },
      ]);
      generation = fresh;
    }
    return { generation, seeds, record: record.success, lastCommit: text(meta[markerField]) };
  });

/** Whether the store still holds the generation this bridge restored. */
export const generationHolds = (bus: Bus, keys: LayerKeys, generation: string): Effect.Effect<boolean, BusError> =>
  Effect.map(bus.hmget(keys.meta, [GENERATION_FIELD]), ([held]) => text(held) === generation);
