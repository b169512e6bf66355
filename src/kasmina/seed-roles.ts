import { SEED_STATES, type SeedState } from "../../machines/lifecycle.ts";

/**
 * What each lifecycle state means to the data plane, as data: the layer's forward pass, the
 * grafting ramp and the weight bookkeeping all read this one table, so "what does EVALUATING
 * do to the tensors" has exactly one answer.
 *
 * - `alpha`: how much of the blueprint is blended into the seed's chunk; "ramp" means the
 *   value in the state table's alpha column, advanced by the seed's grafting strategy.
 * - `learning`: what trains the blueprint. "reconstruction" is the TRAINING objective (see
 *   seed-forward.ts), "task" is the ordinary loss through the blend, "frozen" means the
 *   blueprint is read but its weights are pinned, "none" means it is not read at all.
 *   A FOSSILIZED blueprint is part of the network for good: it trains with the host like any
 *   ordinary layer. Measured on the demo (src/demo, seed 1, 16 epochs, the same four lateral
 *   seeds fossilized): frozen at fossilization the grown network reached 89.9% test accuracy
 *   against 93.1% for the same architecture trained from scratch; trained on, 90.9% against
 *   92.5%. A blueprint frozen after its short GRAFTING and FINE_TUNING windows keeps what it
 *   learned there and nothing more, so growth could never catch up with starting at the final size.
 *   The states a seed is judged in (STABILIZATION, EVALUATING) stay frozen: what is measured
 *   there must not move while it is measured.
 * - `fresh`: entering this state releases the slot: the blueprint's weights are re-initialised
 *   (output weights zero), so a culled seed leaves nothing behind and the slot can be reused.
 */
export interface SeedRole {
  readonly alpha: 0 | 1 | "ramp";
  readonly learning: "none" | "reconstruction" | "task" | "frozen";
  readonly fresh: boolean;
}

export const SEED_ROLES: Readonly<Record<SeedState, SeedRole>> = {
  DORMANT: { alpha: 0, learning: "none", fresh: true },
  GERMINATED: { alpha: 0, learning: "none", fresh: true },
  TRAINING: { alpha: 0, learning: "reconstruction", fresh: false },
  GRAFTING: { alpha: "ramp", learning: "task", fresh: false },
  STABILIZATION: { alpha: 1, learning: "frozen", fresh: false },
  EVALUATING: { alpha: 1, learning: "frozen", fresh: false },
  FINE_TUNING: { alpha: 1, learning: "task", fresh: false },
  FOSSILIZED: { alpha: 1, learning: "task", fresh: false },
  CULLED: { alpha: 0, learning: "none", fresh: true },
  CANCELLED: { alpha: 0, learning: "none", fresh: true },
  ROLLED_BACK: { alpha: 0, learning: "none", fresh: true },
};

const roleAt = SEED_STATES.map((s) => SEED_ROLES[s]);

export const roleOfCode = (code: number): SeedRole => {
  const role = roleAt[code];
  if (role === undefined) throw new RangeError(`no lifecycle state has code ${code}`);
  return role;
};

/** The alpha a seed actually blends with: fixed by its state, or the table's ramp value clamped to [0, 1]. */
export const effectiveAlpha = (stateCode: number, tableAlpha: number): number => {
  const { alpha } = roleOfCode(stateCode);
  if (alpha !== "ramp") return alpha;
  return Number.isFinite(tableAlpha) ? Math.min(1, Math.max(0, tableAlpha)) : 0;
};

/** Whether the seed's blueprint weights receive gradient in this state. */
export const learnsInState = (stateCode: number): boolean => {
  const { learning } = roleOfCode(stateCode);
  return learning === "reconstruction" || learning === "task";
};

/** Whether the seed's state blends its blueprint into the output (alpha other than 0, a ramp included). */
export const blendsInState = (stateCode: number): boolean => roleOfCode(stateCode).alpha !== 0;
