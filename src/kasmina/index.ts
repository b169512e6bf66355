/**
 * The Kasmina data plane on TensorFlow.js: the public surface. Everything tfjs of the library
 * lives under src/kasmina/; the only other importer is the demo (src/demo), an application
 * that builds and trains a model with it.
 */
export { initBackend, parseBackendName, wasmDirectory, BACKENDS, TENSORFLOW_PACKAGES } from "./backend.ts";
export type { BackendInfo, BackendName, BackendOptions } from "./backend.ts";
export { KasminaLayer } from "./layer.ts";
export type { KasminaLayerArgs, Identifier } from "./layer.ts";
export { HOST_ACTIVATIONS, INITIALIZERS } from "./host-dense.ts";
export type { HostActivation, InitializerName } from "./host-dense.ts";
export { StateTable } from "./state-table.ts";
export type { SeedRow, StateTableSnapshot } from "./state-table.ts";
export { SEED_ROLES, effectiveAlpha, learnsInState, blendsInState } from "./seed-roles.ts";
export type { SeedRole } from "./seed-roles.ts";
export {
  BUILTIN_BLUEPRINTS,
  registerBlueprint,
  listBlueprints,
  blueprintIndex,
  blueprintAt,
  requireBlueprint,
  sourceOf,
  bankLayout,
} from "./blueprints.ts";
export type { BlueprintKind, BlueprintActivation, BlueprintSource, BankLayout } from "./blueprints.ts";
export { blueprintParameterCount, blueprintHidden, blueprintInputWidth } from "./blueprint-cost.ts";
export { measureSeedContributions } from "./seed-evaluator.ts";
export type { SeedContributionOptions, SeedContribution, SeedContributions } from "./seed-evaluator.ts";
export { GRAFTING, DEFAULT_GRAFTING, advanceAlphas } from "./grafting.ts";
export type { GraftInput, GraftSignals, GraftingConfig, GraftingColumns, GraftingStrategyFn } from "./grafting.ts";
export { TELEMETRY_COLUMNS, telemetryValue } from "./telemetry.ts";
export type { TelemetryColumn, TelemetrySink } from "./telemetry.ts";
export { SEED_METRIC_COLUMNS, seedMetric } from "./hooks.ts";
export type { KasminaHooks, MetricsWindow, SeedMetricsBatch, SeedMetricColumn, CheckpointEventFields, BlueprintEventFields } from "./hooks.ts";
export { KasminaTrainer } from "./trainer.ts";
export type { KasminaTrainerOptions } from "./trainer.ts";
export { saveCheckpoint, restoreCheckpoint, checkpointPath } from "./checkpoint.ts";
export type { SaveCheckpointOptions, RestoreCheckpointOptions, CheckpointTarget } from "./checkpoint.ts";
export { updateBlueprint, unmetThresholds } from "./blueprint-update.ts";
export type { BlueprintUpdateOptions, BlueprintUpdateResult, Metrics } from "./blueprint-update.ts";
export { KasminaConfigError, CheckpointError, BackendError } from "./errors.ts";
export type { KasminaConfigReason, CheckpointErrorReason, BackendErrorReason } from "./errors.ts";
