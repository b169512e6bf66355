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
  | "bad_checkpoint_id";

export class CheckpointError extends Data.TaggedError("CheckpointError")<{
  readonly reason: CheckpointErrorReason;
  readonly message: string;
  readonly path?: string;
  readonly cause?: unknown;
}> {}

export type BackendErrorReason = "unknown_backend" | "missing_package" | "init_failed";

export class BackendError extends Data.TaggedError("BackendError")<{
  readonly reason: BackendErrorReason;
  readonly message: string;
  readonly cause?: unknown;
}> {}
