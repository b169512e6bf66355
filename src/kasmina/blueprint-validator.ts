/**
 * The data plane's side of blueprint validation across processes: the `validateBlueprint` a trainer replica gives
 * `followLayers` (docs/protocol.md "Blueprint validation"). The follower stays free of TensorFlow.js; this is where
 * its request meets `updateBlueprint` on the replica's KasminaLayers.
 */
import type { BlueprintValidator, BlueprintVerdict } from "../runtime/layer-follower.ts";
import { updateBlueprint, type Metrics } from "./blueprint-update.ts";
import type { KasminaLayer } from "./layer.ts";

/**
 * A `validateBlueprint` for `followLayers` / `startFollowing` on these layers: it gives the seed the new blueprint
 * (`updateBlueprint`), measures the layer with `validate` before and after, and when a threshold is missed puts the
 * previous blueprint's weights and row back (if the command's rollback_on_failure and the seed had a blueprint
 * before; else the verdict is `validated` with success false and the new blueprint stays).
 */
export const blueprintValidator = (layers: readonly KasminaLayer[], validate: (layer: KasminaLayer, seedId: number) => Metrics | Promise<Metrics>): BlueprintValidator => {
  const byId = new Map(layers.map((layer) => [layer.layerId, layer] as const));
  return async (request): Promise<BlueprintVerdict> => {
    const layer = byId.get(request.layerId);
    if (layer === undefined) throw new RangeError(`no KasminaLayer ${request.layerId} was given to blueprintValidator`);
    // Nothing to put back on a seed that had no blueprint: the failure is said, and the seed is Tamiyo's to cull.
    const canRollBack = request.previousBlueprintId !== null;
    const result = await updateBlueprint(layer, request.seedId, request.blueprintId, {
      validate,
      validationMetrics: request.validationMetrics,
      rollbackOnFailure: request.rollbackOnFailure && canRollBack,
      ...(request.strategy ? { strategy: request.strategy } : {}),
    });
    const last = result.events[result.events.length - 1]!;
    const operation = last.operation === "rolled_back" ? "rolled_back" : "validated";
    const noRollback = !result.ok && request.rollbackOnFailure && !canRollBack ? { no_previous_blueprint: true } : {};
    return { operation, success: last.success, metrics_delta: last.metrics_delta, details: { ...last.details, ...noRollback } };
  };
};
