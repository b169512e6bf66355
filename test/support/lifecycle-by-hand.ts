/**
 * The lifecycle as the issue states it, written out by hand for the tests. Tests compare the
 * machines against this, never against machines/lifecycle.ts, so a slip in the code's own
 * tables cannot agree with itself.
 */
import type { SeedState } from "../../machines/lifecycle.ts";

export const STATES_BY_HAND: readonly SeedState[] = [
  "DORMANT",
  "GERMINATED",
  "TRAINING",
  "GRAFTING",
  "STABILIZATION",
  "EVALUATING",
  "FINE_TUNING",
  "FOSSILIZED",
  "CULLED",
  "CANCELLED",
  "ROLLED_BACK",
];

export const TERMINALS_BY_HAND: readonly SeedState[] = ["FOSSILIZED", "CULLED", "CANCELLED", "ROLLED_BACK"];

/** The 16 edges. */
export const EDGES_BY_HAND: ReadonlyArray<readonly [SeedState, SeedState]> = [
  ["DORMANT", "GERMINATED"],
  ["GERMINATED", "TRAINING"],
  ["GERMINATED", "CANCELLED"],
  ["TRAINING", "GRAFTING"],
  ["TRAINING", "CULLED"],
  ["TRAINING", "CANCELLED"],
  ["GRAFTING", "STABILIZATION"],
  ["GRAFTING", "ROLLED_BACK"],
  ["STABILIZATION", "EVALUATING"],
  ["STABILIZATION", "ROLLED_BACK"],
  ["EVALUATING", "FINE_TUNING"],
  ["EVALUATING", "CULLED"],
  ["EVALUATING", "ROLLED_BACK"],
  ["FINE_TUNING", "FOSSILIZED"],
  ["FINE_TUNING", "CULLED"],
  ["FINE_TUNING", "ROLLED_BACK"],
];

/** The edges as "FROM->TO" strings. */
export const EDGE_NAMES_BY_HAND: readonly string[] = EDGES_BY_HAND.map(([from, to]) => `${from}->${to}`);

/** Default minimum epochs per state (the ones that are not zero). */
export const MIN_EPOCHS_BY_HAND: Partial<Record<SeedState, number>> = { TRAINING: 100, GRAFTING: 50, STABILIZATION: 20, EVALUATING: 30, FINE_TUNING: 50 };
