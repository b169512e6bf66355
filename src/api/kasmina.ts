/**
 * `esper/kasmina`: the data plane on TensorFlow.js, and the only entry that loads it. tfjs is a
 * peer dependency, so your model and esper share one copy.
 *
 * `KasminaLayer` drops into a model where a Dense layer was; `KasminaTrainer` drives its seeds'
 * training, grafting ramps and telemetry from your training loop or `model.fit`; `trainerHooks`
 * connects the trainer to a system's layer actors (`layerSpecOf` declares the layer to it).
 */
export { initBackend, BACKENDS, type BackendInfo, type BackendName, type BackendOptions } from "../kasmina/backend.ts";
export { KasminaLayer, type KasminaLayerArgs } from "../kasmina/layer.ts";
export { HOST_ACTIVATIONS, type HostActivation } from "../kasmina/host-dense.ts";
export { StateTable, type SeedRow, type StateTableSnapshot } from "../kasmina/state-table.ts";
export { KasminaTrainer, type KasminaTrainerOptions } from "../kasmina/trainer.ts";
export type { KasminaHooks, SeedMetricsBatch } from "../kasmina/hooks.ts";
export type { TelemetrySink } from "../kasmina/telemetry.ts";
export { trainerHooks, layerSpecOf, type SystemHooks, type LayerReports } from "../runtime/trainer-hooks.ts";
export { BUILTIN_BLUEPRINTS, registerBlueprint, listBlueprints, type BlueprintKind, type BlueprintActivation } from "../kasmina/blueprints.ts";
export { blueprintParameterCount } from "../kasmina/blueprint-cost.ts";
export { GRAFTING, type GraftingStrategyFn, type GraftInput } from "../kasmina/grafting.ts";
export { measureSeedContributions, type SeedContributionOptions, type SeedContribution, type SeedContributions } from "../kasmina/seed-evaluator.ts";
export { saveCheckpoint, restoreCheckpoint, type SaveCheckpointOptions, type RestoreCheckpointOptions, type CheckpointTarget } from "../kasmina/checkpoint.ts";
export { updateBlueprint, type BlueprintUpdateOptions, type BlueprintUpdateResult } from "../kasmina/blueprint-update.ts";
export { blueprintValidator } from "../kasmina/blueprint-validator.ts";
export {
  checkpointLayers,
  restoreLayers,
  type CheckpointLayersOptions,
  type RestoreLayersOptions,
  type LayersCheckpoint,
  type LayerCheckpoint,
} from "../kasmina/layers-checkpoint.ts";
export { KasminaConfigError, CheckpointError, BackendError } from "../kasmina/errors.ts";
