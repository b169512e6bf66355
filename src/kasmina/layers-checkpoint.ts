/**
 * A checkpoint across layers, consistent across the replicas of a trainer whose layers are owned elsewhere
 * (docs/protocol.md "Checkpoints across layers"). Every replica calls `checkpointLayers` at the same training step
 * with the same checkpoint id:
 *
 * 1. it holds each layer's follower where it stands and proposes the event stream's last id as the cut (`P.checkpoint.{id}`);
 * 2. it waits at the barrier `checkpoint.{id}` (a CoordinationRequest on `P.coordination`) for every participant;
 * 3. each layer's cut is the newest id proposed; each replica's follower applies the event stream up to exactly it;
 * 4. each layer's seeds (weights and table) are saved, with a manifest naming the offset of each layer, and the
 *    followers are released; one CheckpointEvent `created` per seed saved goes on the layer's event stream.
 *
 * So every replica saves the tables of the same offsets, and `restoreLayers` + `followLayers({ from })` follows on
 * from exactly there.
 */
import { mkdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { Clock, Effect } from "effect";
import type { Bus } from "../bus/bus.ts";
import { compareStreamIds, MIN_ID, parseStreamId } from "../bus/stream-id.ts";
import { coordinate } from "../coordination/coordinate.ts";
import type { Codec } from "../protocol/codec.ts";
import { encodeEntry, type HmacKey } from "../protocol/entry.ts";
import { checkpointEvent, coordinationRequest } from "../protocol/make.ts";
import { streams, type Topology } from "../protocol/streams.ts";
import type { FollowPosition, LayerFollower, LayerFollowers } from "../runtime/layer-follower.ts";
import { checkpointPath, restoreCheckpoint, saveCheckpoint, writeFileAtomically } from "./checkpoint.ts";
import { CheckpointError } from "./errors.ts";
import type { CheckpointEventFields } from "./hooks.ts";
import type { KasminaLayer } from "./layer.ts";

/** Who takes part in `checkpointLayers`, where it writes, and how it writes its events. */
export interface CheckpointLayersOptions {
  /** Directory of the layers' files and the manifest `{checkpointId}.layers.json`; created when missing. */
  readonly dir: string;
  /** The same for every participant: name the training step (`step-1200`). 1 to 128 of letters, digits, `_`, `.`, `-`. */
  readonly checkpointId: string;
  /** This replica's name at the barrier, unique among the participants. */
  readonly participant: string;
  /** How many replicas take part (the barrier's `parties`). */
  readonly parties: number;
  /** How long to wait for every participant, and then for each follower to reach the cut. Default 30,000 ms. */
  readonly timeoutMs?: number;
  readonly namespace?: string;
  /** The layers' stream names: esper's or the reference's. Default: ESPER_TOPOLOGY, else "esper". */
  readonly topology?: Topology;
  /** `source` of its events. Default "esper.trainer". */
  readonly source?: string;
  readonly codec?: Codec;
  readonly hmacKey?: HmacKey;
  /** Whether to write the CheckpointEvents on the layers' event streams. Default true. */
  readonly publish?: boolean;
}

/** One layer of a checkpoint across layers. */
export interface LayerCheckpoint {
  readonly layerId: string;
  /** The event-stream position its table was saved at: follow on from here after restoring it. */
  readonly position: FollowPosition;
  readonly path: string;
  readonly sizeBytes: number;
}

/** What `checkpointLayers` saved (and what `restoreLayers` restored). */
export interface LayersCheckpoint {
  readonly checkpointId: string;
  readonly layers: readonly LayerCheckpoint[];
  /** Where each layer's follower goes on from: `followLayers(bus, specs, { from })`. */
  readonly from: Readonly<Record<string, FollowPosition>>;
}

/** Where `restoreLayers` reads from and how it writes its events (`recovered`), as for `checkpointLayers`. */
export type RestoreLayersOptions = Omit<CheckpointLayersOptions, "participant" | "parties" | "timeoutMs">;

/** The defaults of CheckpointLayersOptions, and the MAXLEN ~ its events are written with (the event streams' own). */
export const CHECKPOINT_LAYERS_DEFAULTS = { timeoutMs: 30_000, source: "esper.trainer", eventsMaxLen: 100_000 } as const;

interface Manifest {
  readonly checkpoint_id: string;
  readonly participant: string;
  readonly layers: readonly { readonly layer_id: string; readonly offset: string; readonly entries_added: number; readonly file: string; readonly size_bytes: number }[];
}

const manifestPath = (dir: string, checkpointId: string) => join(dir, `${checkpointId}.layers.json`);

const newer = (a: string, b: string): string => (compareStreamIds(parseStreamId(a) ?? MIN_ID, parseStreamId(b) ?? MIN_ID) >= 0 ? a : b);

const followerOf = (followers: LayerFollowers, layer: KasminaLayer): LayerFollower => {
  const follower = followers.layers.find((f) => f.layerId === layer.layerId);
  if (follower === undefined) throw new CheckpointError({ reason: "not_following", message: `layer ${layer.layerId} is not followed by these followers: a checkpoint across layers saves followed layers` });
  return follower;
};

/** One CheckpointEvent per seed, all of one checkpoint id; the file's bytes shared among its seeds (they sum to its size). */
const publishSeedEvents = async (bus: Bus, layer: KasminaLayer, fields: CheckpointEventFields, o: Pick<CheckpointLayersOptions, "namespace" | "topology" | "source" | "codec" | "hmacKey">) => {
  const stream = streams(o.namespace, o.topology).events(layer.layerId);
  const share = Math.floor(fields.checkpoint_size_bytes / layer.numSeeds);
  const entries = Array.from({ length: layer.numSeeds }, (_, seedId) => {
    const message = checkpointEvent({
      source: o.source ?? CHECKPOINT_LAYERS_DEFAULTS.source,
      layer_id: layer.layerId,
      seed_id: seedId,
      checkpoint_id: fields.checkpoint_id,
      operation: fields.operation,
      checkpoint_size_bytes: share + (seedId === 0 ? fields.checkpoint_size_bytes - share * layer.numSeeds : 0),
      success: fields.success,
      error: fields.error,
    });
    return { stream, fields: encodeEntry(message, { stream, ...(o.codec ? { codec: o.codec } : {}), ...(o.hmacKey ? { hmacKey: o.hmacKey } : {}) }) };
  });
  await Effect.runPromise(bus.publishMany(entries, CHECKPOINT_LAYERS_DEFAULTS.eventsMaxLen));
};

const writeManifest = async (path: string, manifest: Manifest) => {
  try {
    await writeFileAtomically(path, JSON.stringify(manifest, null, 2));
  } catch (error) {
    throw new CheckpointError({ reason: "io", message: `cannot write ${path}: ${String(error)}`, path, cause: error });
  }
};

/**
 * Called by every replica of a trainer at the same step with the same `checkpointId`: meets the others at the barrier
 * `checkpoint.{id}`, holds each layer's follower at the cut they agree on (the newest event-stream id any of them saw),
 * and saves `layers` (weights and state tables, each followed by `followers`) there, with a manifest of each layer's
 * offset; then one CheckpointEvent `created` per seed on the layer's event stream. Resolves with the offsets to follow
 * on from. Rejects with a CheckpointError: `barrier_timeout` when not every participant arrived within `timeoutMs`
 * (nothing saved, the followers released), `not_following`, or a `saveCheckpoint` reason.
 */
export const checkpointLayers = async (bus: Bus, followers: LayerFollowers, layers: readonly KasminaLayer[], options: CheckpointLayersOptions): Promise<LayersCheckpoint> => {
  const names = streams(options.namespace, options.topology);
  const timeoutMs = options.timeoutMs ?? CHECKPOINT_LAYERS_DEFAULTS.timeoutMs;
  const held = layers.map((layer) => ({ layer, follower: followerOf(followers, layer) }));
  const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect);
  try {
    // Held where each stands (so none passes the cut), then the cut proposed: each stream's last id, at or past that.
    const proposal: Record<string, string> = {};
    for (const { layer, follower } of held) {
      follower.holdAt(follower.offset());
      proposal[layer.layerId] = newer(await run(bus.lastId(names.events(layer.layerId))), follower.offset());
    }
    const proposals = names.sharedKey("checkpoint", options.checkpointId);
    await run(bus.commit([{ op: "hset", key: proposals, values: { [options.participant]: JSON.stringify(proposal) } }]));
    const response = await run(
      coordinate(
        bus,
        coordinationRequest({
          source: options.source ?? CHECKPOINT_LAYERS_DEFAULTS.source,
          operation: "barrier",
          resource_id: `checkpoint.${options.checkpointId}`,
          requester_id: options.participant,
          timeout_ms: timeoutMs,
          parameters: { parties: options.parties },
        }),
        { ...(options.namespace ? { namespace: options.namespace } : {}), ...(options.codec ? { codec: options.codec } : {}), ...(options.hmacKey ? { hmacKey: options.hmacKey } : {}) },
      ),
    );
    if (!response.granted) {
      const arrived = typeof response.details.arrived === "number" ? response.details.arrived : 0;
      throw new CheckpointError({
        reason: "barrier_timeout",
        message: `checkpoint ${options.checkpointId}: ${arrived} of ${options.parties} participants reached its barrier within ${timeoutMs} ms; nothing was saved`,
        path: options.dir,
      });
    }
    // Every participant proposed before it arrived: the cut of each layer is the newest id any of them saw.
    const all = await run(bus.hgetall(proposals));
    const cut: Record<string, string> = { ...proposal };
    for (const bytes of Object.values(all)) {
      const theirs = JSON.parse(Buffer.from(bytes).toString("utf8")) as Record<string, string>;
      for (const layerId of Object.keys(cut)) if (typeof theirs[layerId] === "string") cut[layerId] = newer(theirs[layerId], cut[layerId]!);
    }
    const now = () => Clock.Clock.defaultValue().currentTimeMillisUnsafe();
    const deadline = now() + timeoutMs;
    for (const { layer, follower } of held) {
      const at = cut[layer.layerId]!;
      follower.holdAt(at);
      while (follower.offset() !== at) {
        if (now() > deadline || compareStreamIds(parseStreamId(follower.offset()) ?? MIN_ID, parseStreamId(at) ?? MIN_ID) > 0) {
          throw new CheckpointError({ reason: "not_following", message: `checkpoint ${options.checkpointId}: the follower of ${layer.layerId} did not stop at ${at} (it is at ${follower.offset()})`, path: options.dir });
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    await mkdir(options.dir, { recursive: true });
    const saved: LayerCheckpoint[] = [];
    for (const { layer, follower } of held) {
      const created = await saveCheckpoint(layer, { dir: options.dir, checkpointId: options.checkpointId });
      saved.push({ layerId: layer.layerId, position: follower.position(), path: checkpointPath(options.dir, layer.layerId, options.checkpointId), sizeBytes: created.checkpoint_size_bytes });
      if (options.publish !== false) await publishSeedEvents(bus, layer, created, options);
    }
    const manifest: Manifest = {
      checkpoint_id: options.checkpointId,
      participant: options.participant,
      layers: saved.map((s) => ({ layer_id: s.layerId, offset: s.position.offset, entries_added: s.position.entriesAdded, file: basename(s.path), size_bytes: s.sizeBytes })),
    };
    await writeManifest(manifestPath(options.dir, options.checkpointId), manifest);
    return { checkpointId: options.checkpointId, layers: saved, from: Object.fromEntries(saved.map((s) => [s.layerId, s.position])) };
  } finally {
    for (const { follower } of held) follower.holdAt(undefined);
  }
};

/**
 * Restores every layer of a `checkpointLayers` checkpoint (weights and tables, each all or nothing) and writes a
 * CheckpointEvent `recovered` per seed; follow on with `followLayers(bus, specs, { from: restored.from })`.
 * Rejects with a CheckpointError (`io` for a missing manifest, `not_following` for a layer the checkpoint does not hold, or a `restoreCheckpoint` reason).
 */
export const restoreLayers = async (bus: Bus, layers: readonly KasminaLayer[], options: RestoreLayersOptions): Promise<LayersCheckpoint> => {
  const path = manifestPath(options.dir, options.checkpointId);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(path, "utf8")) as Manifest;
  } catch (error) {
    throw new CheckpointError({ reason: "io", message: `cannot read the manifest ${path}: ${String(error)}`, path, cause: error });
  }
  const restored: LayerCheckpoint[] = [];
  for (const layer of layers) {
    const entry = manifest.layers.find((l) => l.layer_id === layer.layerId);
    if (entry === undefined) throw new CheckpointError({ reason: "not_following", message: `checkpoint ${options.checkpointId} holds no layer ${layer.layerId}`, path });
    const recovered = await restoreCheckpoint(layer, { dir: options.dir, checkpointId: options.checkpointId });
    restored.push({ layerId: layer.layerId, position: { offset: entry.offset, entriesAdded: entry.entries_added }, path: join(options.dir, entry.file), sizeBytes: recovered.checkpoint_size_bytes });
    if (options.publish !== false) await publishSeedEvents(bus, layer, recovered, options);
  }
  return { checkpointId: options.checkpointId, layers: restored, from: Object.fromEntries(restored.map((s) => [s.layerId, s.position])) };
};
