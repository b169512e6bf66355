import { createHash, randomUUID } from "node:crypto";
import { Clock } from "effect";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { endianness } from "node:os";
import { join } from "node:path";
import { GRAFTING_STRATEGIES, parseSeedState, type GraftingStrategy } from "../../machines/lifecycle.ts";
import { blueprintAt, blueprintIndex } from "./blueprints.ts";
import { CheckpointError } from "./errors.ts";
import type { CheckpointEventFields } from "./hooks.ts";
import type { KasminaLayer } from "./layer.ts";
import type { SeedRow } from "./state-table.ts";

/**
 * Checkpoints of a layer's seeds: their state-table rows and blueprint parameters (the host's
 * own weights belong to `model.save`). A whole layer or one seed per file.
 *
 * File: "ESPERKAS" | u32 format version | u32 header length | header JSON | float32 LE banks |
 * sha256 of everything before it. Written to a temporary file, fsynced, then renamed, so a
 * reader sees the old file or the new one, never half of one. Rows name their blueprint by id,
 * not by registry index, so a checkpoint reads back in a process that registered kinds in
 * another order.
 */
const MAGIC = Buffer.from("ESPERKAS", "ascii");
const FORMAT_VERSION = 1;
const DIGEST_BYTES = 32;
const PREFIX_BYTES = MAGIC.length + 8;
const CHECKPOINT_ID = /^[A-Za-z0-9_.-]{1,128}$/;

interface Header {
  readonly layer_id: string;
  readonly checkpoint_id: string;
  readonly created_at: number;
  readonly num_seeds: number;
  readonly units: number;
  readonly chunk: number;
  /** The layer's input width (what an input-reading kind's bank width depends on). Absent in files written before it was recorded. */
  readonly input_dim?: number;
  /** The seed of a seed-scoped checkpoint, null for a whole layer. */
  readonly seed_id: number | null;
  readonly seeds: number[];
  readonly rows: { state: string; blueprint: string | null; epochs_in_state: number; alpha: number; strategy: string; error_count: number }[];
  readonly banks: { blueprint: string; width: number; floats: number }[];
}

/** Which checkpoint `restoreCheckpoint` reads: the file `{dir}/{layerId}.{checkpointId}.kasmina` of the layer restored. */
export interface CheckpointTarget {
  /** The directory `saveCheckpoint` wrote to. */
  readonly dir: string;
  /** The id `saveCheckpoint` was given or returned (its `checkpoint_id`). */
  readonly checkpointId: string;
}

/** Where and what `saveCheckpoint` writes. */
export interface SaveCheckpointOptions {
  /** Directory of the file `{layerId}.{checkpointId}.kasmina`; created when missing. */
  readonly dir: string;
  /** Checkpoint just this seed; the whole layer when omitted. */
  readonly seedId?: number;
  /** 1 to 128 of letters, digits, `_`, `.` and `-`. Default: a fresh `ckpt-<time>-<random>`. */
  readonly checkpointId?: string;
  /** Called with the CheckpointEvent's fields (`created`), whether it succeeded or failed. */
  readonly onEvent?: (event: CheckpointEventFields) => void;
}

/** Options of `restoreCheckpoint`. */
export interface RestoreCheckpointOptions {
  /** Called with the CheckpointEvent's fields (`recovered`), whether it succeeded or failed. */
  readonly onEvent?: (event: CheckpointEventFields) => void;
}

export const checkpointPath = (dir: string, layerId: string, checkpointId: string): string => join(dir, `${layerId}.${checkpointId}.kasmina`);

const toLittleEndian = (values: Float32Array): Buffer => {
  if (endianness() === "LE") return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const out = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => out.writeFloatLE(v, i * 4));
  return out;
};

const fromLittleEndian = (bytes: Buffer): Float32Array => {
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
};

/** Checkpoints are stamped with Effect's (live) Clock: the data plane runs outside Effect. */
const wallClock = (): number => Clock.Clock.defaultValue().currentTimeMillisUnsafe();

export const encodeCheckpoint = (layer: KasminaLayer, seedId: number | null, checkpointId: string): Buffer => {
  const seeds = seedId === null ? Array.from({ length: layer.numSeeds }, (_, i) => i) : [seedId];
  const params = layer.readSeedParams(seeds);
  const header: Header = {
    layer_id: layer.layerId,
    checkpoint_id: checkpointId,
    created_at: wallClock() / 1000,
    num_seeds: layer.numSeeds,
    units: layer.units,
    chunk: layer.chunk,
    input_dim: layer.inputDim!,
    seed_id: seedId,
    seeds,
    rows: seeds.map((seed) => {
      const row = layer.table.row(seed);
      return {
        state: row.state,
        blueprint: row.blueprint < 0 ? null : (blueprintAt(row.blueprint)?.id ?? null),
        epochs_in_state: row.epochsInState,
        alpha: row.alpha,
        strategy: row.strategy,
        error_count: row.errorCount,
      };
    }),
    banks: layer.layouts.map((l, k) => ({ blueprint: l.kind.id, width: l.width, floats: params[k]!.length })),
  };
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const prefix = Buffer.alloc(PREFIX_BYTES);
  MAGIC.copy(prefix, 0);
  prefix.writeUInt32LE(FORMAT_VERSION, MAGIC.length);
  prefix.writeUInt32LE(json.length, MAGIC.length + 4);
  const body = Buffer.concat([prefix, json, ...params.map(toLittleEndian)]);
  return Buffer.concat([body, createHash("sha256").update(body).digest()]);
};

const fail = (reason: CheckpointError["reason"], message: string, path: string, cause?: unknown): never => {
  throw new CheckpointError({ reason, message, path, cause });
};

/** Checks a file against `layer` and returns what to restore, or throws a CheckpointError. Mutates nothing. */
export const decodeCheckpoint = (layer: KasminaLayer, file: Buffer, path: string) => {
  if (file.length < PREFIX_BYTES + DIGEST_BYTES || !file.subarray(0, MAGIC.length).equals(MAGIC)) {
    fail("format", `${path} is not a Kasmina checkpoint (no ESPERKAS header)`, path);
  }
  const version = file.readUInt32LE(MAGIC.length);
  if (version !== FORMAT_VERSION) fail("format", `${path} has checkpoint format ${version}; this esper reads ${FORMAT_VERSION}`, path);
  const body = file.subarray(0, file.length - DIGEST_BYTES);
  if (!createHash("sha256").update(body).digest().equals(file.subarray(file.length - DIGEST_BYTES))) {
    fail("checksum", `${path} fails its sha256 check: the file is truncated or altered`, path);
  }
  const headerLength = file.readUInt32LE(MAGIC.length + 4);
  let header: Header;
  try {
    header = JSON.parse(body.subarray(PREFIX_BYTES, PREFIX_BYTES + headerLength).toString("utf8")) as Header;
  } catch (error) {
    return fail("format", `${path}: unreadable header`, path, error);
  }
  if (header.layer_id !== layer.layerId) fail("foreign_layer", `${path} belongs to layer "${header.layer_id}", not "${layer.layerId}"`, path);
  if (header.num_seeds !== layer.numSeeds || header.units !== layer.units || header.chunk !== layer.chunk) {
    fail("shape_mismatch", `${path} holds ${header.num_seeds} seeds x ${header.chunk} units; the layer has ${layer.numSeeds} x ${layer.chunk}`, path);
  }
  if (header.input_dim !== undefined && header.input_dim !== layer.inputDim) {
    fail("shape_mismatch", `${path} was written by a layer with ${header.input_dim} inputs; this one has ${layer.inputDim}`, path);
  }
  if (header.seeds.some((s) => !Number.isInteger(s) || s < 0 || s >= layer.numSeeds) || header.rows.length !== header.seeds.length) {
    fail("shape_mismatch", `${path} names seeds outside 0..${layer.numSeeds - 1}`, path);
  }
  const sections = new Map<string, Float32Array>();
  let offset = PREFIX_BYTES + headerLength;
  for (const bank of header.banks) {
    const end = offset + bank.floats * 4;
    if (end > body.length) fail("format", `${path}: bank ${bank.blueprint} runs past the end of the file`, path);
    sections.set(bank.blueprint, fromLittleEndian(body.subarray(offset, end)));
    offset = end;
  }
  const params = layer.layouts.map((layout) => {
    const bank = header.banks.find((b) => b.blueprint === layout.kind.id);
    if (!bank || bank.width !== layout.width || bank.floats !== layout.width * header.seeds.length) {
      return fail("shape_mismatch", `${path} has no ${layout.kind.id} bank of width ${layout.width} for ${header.seeds.length} seed(s)`, path);
    }
    return sections.get(bank.blueprint)!;
  });
  const rows: SeedRow[] = header.rows.map((r) => {
    const state = parseSeedState(r.state);
    const blueprint = r.blueprint === null ? -1 : blueprintIndex(r.blueprint);
    const strategy = GRAFTING_STRATEGIES.includes(r.strategy as GraftingStrategy) ? (r.strategy as GraftingStrategy) : undefined;
    if (!state || (r.blueprint !== null && (blueprint < 0 || layer.kindOf(blueprint) < 0)) || !strategy) {
      return fail("shape_mismatch", `${path}: row ${JSON.stringify(r)} names a state, strategy, or blueprint this layer does not hold`, path);
    }
    return { state, blueprint, epochsInState: r.epochs_in_state, alpha: r.alpha, strategy, errorCount: r.error_count };
  });
  return { header, params, rows };
};

const event = (layer: KasminaLayer, seedId: number | null, checkpointId: string, operation: "created" | "recovered", size: number, error: unknown = null): CheckpointEventFields => ({
  layer_id: layer.layerId,
  seed_id: seedId,
  checkpoint_id: checkpointId,
  operation,
  checkpoint_size_bytes: size,
  success: error === null,
  error: error === null ? null : error instanceof Error ? error.message : String(error),
});

/**
 * Writes the seeds of `layer` (their state-table rows and blueprint weights; not the host's weights, which are
 * `model.save`'s), the whole layer or one seed, to a file with a sha256, atomically: a temporary file, fsynced, then
 * renamed. Resolves with the CheckpointEvent fields; rejects with a CheckpointError (`bad_checkpoint_id`, `unknown_seed`, else `io`).
 */
export const saveCheckpoint = async (layer: KasminaLayer, options: SaveCheckpointOptions): Promise<CheckpointEventFields> => {
  const checkpointId = options.checkpointId ?? `ckpt-${wallClock()}-${randomUUID().slice(0, 8)}`;
  const seedId = options.seedId ?? null;
  const path = checkpointPath(options.dir, layer.layerId, checkpointId);
  try {
    if (!CHECKPOINT_ID.test(checkpointId)) fail("bad_checkpoint_id", `checkpoint id "${checkpointId}" must match ${CHECKPOINT_ID}`, path);
    if (seedId !== null && !(Number.isInteger(seedId) && seedId >= 0 && seedId < layer.numSeeds)) {
      fail("unknown_seed", `seed ${seedId} is not a seed of layer ${layer.layerId} (0 to ${layer.numSeeds - 1})`, path);
    }
    const bytes = encodeCheckpoint(layer, seedId, checkpointId);
    await mkdir(options.dir, { recursive: true });
    await writeFileAtomically(path, bytes);
    const created = event(layer, seedId, checkpointId, "created", bytes.length);
    options.onEvent?.(created);
    return created;
  } catch (error) {
    const typed = error instanceof CheckpointError ? error : new CheckpointError({ reason: "io", message: `cannot write ${path}: ${String(error)}`, path, cause: error });
    options.onEvent?.(event(layer, seedId, checkpointId, "created", 0, typed));
    throw typed;
  }
};

/**
 * Writes `data` to `path` so that a reader finds the old file or the whole new one, never a part: a temporary file
 * next to it, fsynced, then renamed over it (the temporary one is removed if anything fails). Rejects as `fs` does.
 */
export const writeFileAtomically = async (path: string, data: Uint8Array | string): Promise<void> => {
  const temp = `${path}.tmp-${process.pid}-${randomUUID().slice(0, 8)}`;
  try {
    const handle = await open(temp, "w");
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
};

/** Restores `target` (or a file path) into `layer`, all or nothing. */
export const restoreCheckpoint = async (layer: KasminaLayer, target: CheckpointTarget | string, options: RestoreCheckpointOptions = {}): Promise<CheckpointEventFields> => {
  const path = typeof target === "string" ? target : checkpointPath(target.dir, layer.layerId, target.checkpointId);
  let checkpointId = typeof target === "string" ? path : target.checkpointId;
  let seedId: number | null = null;
  try {
    let file: Buffer;
    try {
      file = await readFile(path);
    } catch (error) {
      return fail("io", `cannot read checkpoint ${path}: ${String(error)}`, path, error);
    }
    const { header, params, rows } = decodeCheckpoint(layer, file, path);
    checkpointId = header.checkpoint_id;
    seedId = header.seed_id;
    layer.restoreSeeds(header.seeds, params, rows);
    const recovered = event(layer, seedId, checkpointId, "recovered", file.length);
    options.onEvent?.(recovered);
    return recovered;
  } catch (error) {
    const typed = error instanceof CheckpointError ? error : new CheckpointError({ reason: "io", message: String(error), path, cause: error });
    options.onEvent?.(event(layer, seedId, checkpointId, "recovered", 0, typed));
    throw typed;
  }
};
