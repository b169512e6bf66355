import type { GraftingStrategy } from "../../machines/lifecycle.ts";
import { blueprintAt, requireBlueprint } from "./blueprints.ts";
import { KasminaConfigError } from "./errors.ts";
import type { BlueprintEventFields } from "./hooks.ts";
import type { KasminaLayer } from "./layer.ts";

/**
 * The data-plane half of BlueprintUpdateCommand: give a seed a new blueprint (fresh weights,
 * output decoder zero, so the layer's function is unchanged at the moment of the swap),
 * optionally validate the layer afterwards, and put the previous blueprint back, weights and
 * row exactly as they were, when validation misses its thresholds and `rollbackOnFailure` is on.
 */
export type Metrics = Readonly<Record<string, number>>;

/** How `updateBlueprint` swaps a seed's blueprint: the grafting strategy to write, and how to validate the swap and undo it. */
export interface BlueprintUpdateOptions {
  /** The command's grafting_strategy, written to the seed's row with the blueprint. */
  readonly strategy?: GraftingStrategy;
  /** Measures the layer (e.g. a validation pass). Called before and after the update; metrics_delta is after - before. */
  readonly validate?: (layer: KasminaLayer, seedId: number) => Metrics | Promise<Metrics>;
  /**
   * The command's validation_metrics: `max_<metric>` is an upper bound, `min_<metric>` or a bare
   * `<metric>` a lower bound. A metric validate did not report counts as not met.
   */
  readonly validationMetrics?: Metrics;
  /** Default true, as in the protocol. */
  readonly rollbackOnFailure?: boolean;
  /** Called with each BlueprintEvent's fields as it happens (`updated`, then `validated` or `rolled_back`). */
  readonly onEvent?: (event: BlueprintEventFields) => void;
}

/** What `updateBlueprint` did: whether the new blueprint stands, whether it was rolled back, and why. */
export interface BlueprintUpdateResult {
  /** The new blueprint is in place and met every threshold (or nothing was validated). */
  readonly ok: boolean;
  /** The previous blueprint, weights and row were put back because validation missed its thresholds. */
  readonly rolledBack: boolean;
  /** Thresholds that were not met, e.g. `accuracy >= 0.9 (got 0.71)`. */
  readonly unmet: readonly string[];
  /** What `validate` measured after the update (`{}` without a validate, or when it threw). */
  readonly metrics: Metrics;
  /** The BlueprintEvent fields emitted, in order (also given to `onEvent`). */
  readonly events: readonly BlueprintEventFields[];
}

/** Which thresholds `metrics` misses. Pure. */
export const unmetThresholds = (metrics: Metrics, thresholds: Metrics): string[] =>
  Object.entries(thresholds).flatMap(([key, bound]) => {
    const upper = key.startsWith("max_");
    const name = upper || key.startsWith("min_") ? key.slice(4) : key;
    const value = metrics[name];
    if (value === undefined || !Number.isFinite(value)) return [`${name} was not measured`];
    const met = upper ? value <= bound : value >= bound;
    return met ? [] : [`${name} ${upper ? "<=" : ">="} ${bound} (got ${value})`];
  });

const deltaOf = (before: Metrics, after: Metrics): Record<string, number> =>
  Object.fromEntries(Object.keys(after).filter((k) => k in before).map((k) => [k, after[k]! - before[k]!]));

/**
 * Gives seed `seedId` of `layer` the blueprint `blueprintId` with fresh weights (its output decoder zero, so the layer's
 * function does not change at the swap), writing it to the seed's state-table row; then, with `validate`, checks
 * `validationMetrics` and, when one is missed, puts the previous blueprint back (unless `rollbackOnFailure: false`).
 * Throws a KasminaConfigError (`unknown_blueprint`) for a kind that is not registered or that the layer holds no bank for.
 */
export const updateBlueprint = async (
  layer: KasminaLayer,
  seedId: number,
  blueprintId: string,
  options: BlueprintUpdateOptions = {},
): Promise<BlueprintUpdateResult> => {
  const index = requireBlueprint(blueprintId);
  if (!layer.supportsBlueprint(blueprintId)) {
    throw new KasminaConfigError({ reason: "unknown_blueprint", message: `layer ${layer.layerId} holds no bank for blueprint "${blueprintId}"` });
  }
  const previousRow = layer.table.row(seedId);
  const previousParams = layer.readSeedParams([seedId]);
  const previousId = previousRow.blueprint < 0 ? null : (blueprintAt(previousRow.blueprint)?.id ?? null);
  const events: BlueprintEventFields[] = [];
  const emit = (fields: Omit<BlueprintEventFields, "layer_id" | "seed_id" | "blueprint_id" | "previous_blueprint_id">): void => {
    const full = { layer_id: layer.layerId, seed_id: seedId, blueprint_id: blueprintId, previous_blueprint_id: previousId, ...fields };
    events.push(full);
    options.onEvent?.(full);
  };

  const before = options.validate ? await options.validate(layer, seedId) : {};
  layer.table.write(seedId, { blueprint: index, ...(options.strategy ? { strategy: options.strategy } : {}) });
  layer.seedPlan();
  emit({ operation: "updated", metrics_delta: {}, success: true, details: {} });
  if (!options.validate) return { ok: true, rolledBack: false, unmet: [], metrics: {}, events };

  let after: Metrics = {};
  let unmet: string[];
  try {
    after = await options.validate(layer, seedId);
    unmet = unmetThresholds(after, options.validationMetrics ?? {});
  } catch (error) {
    unmet = [`validation failed: ${error instanceof Error ? error.message : String(error)}`];
  }
  const delta = deltaOf(before, after);
  if (unmet.length === 0) {
    emit({ operation: "validated", metrics_delta: delta, success: true, details: { metrics: after } });
    return { ok: true, rolledBack: false, unmet, metrics: after, events };
  }
  if (options.rollbackOnFailure ?? true) {
    layer.restoreSeeds([seedId], previousParams, [previousRow]);
    emit({ operation: "rolled_back", metrics_delta: delta, success: true, details: { unmet, metrics: after, restored_blueprint_id: previousId } });
    return { ok: false, rolledBack: true, unmet, metrics: after, events };
  }
  emit({ operation: "validated", metrics_delta: delta, success: false, details: { unmet, metrics: after } });
  return { ok: false, rolledBack: false, unmet, metrics: after, events };
};
