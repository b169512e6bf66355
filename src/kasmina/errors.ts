import { Data } from "effect";

/**
 * The data plane's failures, one tagged class per concern with a closed set of reasons, so a
 * caller (the runtime, the CLI, an Effect pipeline via `Effect.tryPromise`) can match on
 * `_tag` and `reason` instead of parsing messages. They are thrown (or rejected) as plain
 * Errors because the data plane is called from ordinary tfjs training code.
 */

export type KasminaConfigReason =
  | "units_not_divisible"
  | "bad_seed_count"
  | "bad_input_shape"
  | "unknown_activation"
  | "unknown_initializer"
  | "bad_config"
  | "unknown_blueprint"
  | "duplicate_blueprint"
  | "bad_blueprint"
  | "bad_layer_id";

/**
 * A data-plane configuration esper refuses: a KasminaLayer's arguments (units not a multiple of numSeeds, an unknown
 * activation, initializer or blueprint, a bad layer id...), a blueprint kind `registerBlueprint` cannot take, or a
 * blueprint a layer holds no bank for. Thrown synchronously, before anything changed; `reason` says which, `message` how to fix it.
 */
export class KasminaConfigError extends Data.TaggedError("KasminaConfigError")<{
  readonly reason: KasminaConfigReason;
  readonly message: string;
}> {}

export type CheckpointErrorReason =
  /** The file is missing or the directory cannot be written. */
  | "io"
  /** Not a Kasmina checkpoint at all, or a format version this code does not read. */
  | "format"
  /** The sha256 over the file does not match: truncated or altered. */
  | "checksum"
  /** A valid checkpoint of another layer. */
  | "foreign_layer"
  /** A valid checkpoint of this layer id whose shapes (seeds, chunk, blueprint sizes) differ. */
  | "shape_mismatch"
  /** A checkpoint id `saveCheckpoint` does not accept (1 to 128 of letters, digits, `_`, `.`, `-`). */
  | "bad_checkpoint_id"
  /** `seedId` names no seed of the layer. */
  | "unknown_seed"
  /** `checkpointLayers`: not every participant reached the checkpoint's barrier in time; nothing was saved. */
  | "barrier_timeout"
  /** `checkpointLayers` / `restoreLayers`: a layer its followers do not follow, or whose follower could not stop at the agreed offset. */
  | "not_following";

/**
 * `saveCheckpoint` or `restoreCheckpoint` failed; `reason` says why (see CheckpointErrorReason) and `path` names the file.
 * A restore that fails changes nothing in the layer; a save that fails leaves no partial file.
 */
export class CheckpointError extends Data.TaggedError("CheckpointError")<{
  readonly reason: CheckpointErrorReason;
  readonly message: string;
  readonly path?: string;
  readonly cause?: unknown;
}> {}

export type BackendErrorReason =
  /** ESPER_BACKEND (or the name given) is not one of wasm, cpu, tensorflow. */
  | "unknown_backend"
  /** `tensorflow` was asked for but neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed. */
  | "missing_package"
  /** The backend's package is there but failed to load or register with esper's tfjs-core (e.g. another version). */
  | "init_failed";

/**
 * `initBackend` could not start the backend asked for; the message says what to install or set. A wasm backend that
 * cannot start is not an error: it falls back to cpu with a warning (`BackendInfo.fallbackReason`).
 */
export class BackendError extends Data.TaggedError("BackendError")<{
  readonly reason: BackendErrorReason;
  readonly message: string;
  readonly cause?: unknown;
}> {}
