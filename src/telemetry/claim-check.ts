import type { TelemetryFrame } from "./frame.ts";

/**
 * `metadata.claim_check` of a reference entry: where the payload is and how to read it. An entry
 * too large for the telemetry stream goes to the layer's claim stream; the telemetry stream
 * carries a LayerHealthReport without seeds whose metadata names it (options.ts claimCheckThreshold).
 */
export interface ClaimCheck {
  /** The claim stream, `P.claim.layer.{L}`. */
  readonly key: string;
  /** The payload's entry id in it. */
  readonly id: string;
  /** The payload entry's `type` and `enc`. */
  readonly type: string;
  readonly enc: string;
  readonly bytes: number;
  /** Seed records the payload holds. */
  readonly records: number;
}

/** The claim check a frame stands for (a reference the publisher wrote), or undefined. */
export const claimOf = (frame: TelemetryFrame): ClaimCheck | undefined => {
  const c = frame.metadata?.claim_check as Partial<ClaimCheck> | undefined;
  if (typeof c !== "object" || c === null) return undefined;
  if (typeof c.key !== "string" || typeof c.id !== "string" || typeof c.type !== "string" || typeof c.enc !== "string") return undefined;
  return { key: c.key, id: c.id, type: c.type, enc: c.enc, bytes: Number(c.bytes) || 0, records: Number(c.records) || 0 };
};
