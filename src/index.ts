/**
 * esper's public API. Everything else under src/ is internal and may change without notice.
 *
 * Three planes:
 * - control: `startSystem` spawns layers of seed actors (XState) in process; `LayerHost` hosts one layer;
 *   the machines themselves are exported for tests, tooling and Stately.
 * - message: `MemoryBus` (embedded) and Redis Streams (`connectRedis` from Promise code,
 *   `makeRedisBus` in an Effect Scope) behind one `Bus`;
 *   `runLayerBridge` puts a layer on a bus, `makeClient` sends commands and follows events;
 *   the protocol's message builders and codecs speak PROTOCOL.md.
 * - data: `KasminaLayer` (a tfjs layer whose seeds read the state table), `KasminaTrainer`, checkpoints,
 *   `measureSeedContributions` (a seed's worth on held-out data).
 * - Tamiyo: `makeTamiyo` runs the controller with its policy on a layer's streams; telemetry
 *   aggregation and anomaly alerts feed it.
 */

// ---- control plane -----------------------------------------------------------------------------
export {
  startSystem,
  makeSystem,
  SystemConfigError,
  type SystemConfig,
  type LayerSpec,
  type EsperSystem,
  type RunningSystem,
  type SystemEvent,
  type TransitionOptions,
} from "./runtime/system.ts";
export { LayerHost, type LayerHostOptions, type Applied } from "./runtime/layer-host.ts";
export { inspectionFrom, InspectionConfigError, type Inspection } from "./runtime/inspection.ts";
export { machineConfig, machineConfigs } from "./runtime/definitions.ts";
export { seedMachine, requestTransition, persistSeed, seedSnapshotOf, epochsInState, type SeedContext, type SeedEvent, type SeedOutcome, type PersistedSeed } from "../machines/seed.ts";
export { layerMachine, type LayerEvent, type LayerEmitted } from "../machines/layer.ts";
export { controllerMachine, type Decision, type OutstandingCommand, type ControllerEvent, type ControllerEmitted } from "../machines/controller.ts";
export {
  SEED_STATES,
  EDGES,
  TERMINAL_STATES,
  GRAFTING_STRATEGIES,
  RESULT_CODES,
  DEFAULT_GUARDS,
  guardConfig,
  parseSeedState,
  type SeedState,
  type GraftingStrategy,
  type GuardConfig,
  type GuardOverrides,
  type ResultCode,
} from "../machines/lifecycle.ts";
export { checkTransition, type Verdict, type Metrics } from "../machines/seed-rules.ts";

// ---- message plane -----------------------------------------------------------------------------
export {
  MemoryBus,
  makeRedisBus,
  connectRedis,
  type RedisConnection,
  type RedisTarget,
  RedisBus,
  BusError,
  BusService,
  listDeadLetters,
  replayDeadLetter,
  type Bus,
  type Entry,
  type EntryFields,
  type MemoryBusOptions,
  type RedisBusOptions,
  type RedisBusStats,
  type DeadLetterRecord,
} from "./bus/index.ts";
export { runLayerBridge, LayerDataLost, BridgeRestoreError, type LayerBridge, type BridgeStats } from "./bridge/bridge.ts";
export { BRIDGE_DEFAULTS, type BridgeOptions } from "./bridge/options.ts";
export { makeClient, type EsperClient, type ClientOptions, type SendOptions } from "./client/client.ts";
export {
  lifecycleCommand,
  blueprintUpdateCommand,
  batchCommand,
  emergencyStopCommand,
  resumeCommand,
  makeMessage,
  encodeEntry,
  decodeEntry,
  streams,
  ProtocolError,
  CODECS,
  type Codec,
  type Message,
  type Command,
  type CommandResult,
  type StateTransitionEvent,
  type LifecycleTransitionCommand,
  type BlueprintUpdateCommand,
  type BatchCommand,
  type EmergencyStopCommand,
  type ResumeCommand,
  type LayerHealthReport,
  type SeedMetricsSnapshot,
} from "./protocol/index.ts";

// ---- data plane --------------------------------------------------------------------------------
export { trainerHooks, layerSpecOf, metricsBySeed } from "./runtime/trainer-hooks.ts";
export {
  KasminaLayer,
  KasminaTrainer,
  StateTable,
  initBackend,
  registerBlueprint,
  listBlueprints,
  saveCheckpoint,
  restoreCheckpoint,
  updateBlueprint,
  measureSeedContributions,
  blueprintParameterCount,
  GRAFTING,
  KasminaConfigError,
  CheckpointError,
  BackendError,
  type KasminaLayerArgs,
  type KasminaTrainerOptions,
  type KasminaHooks,
  type BackendInfo,
  type BlueprintKind,
} from "./kasmina/index.ts";

// ---- Tamiyo ------------------------------------------------------------------------------------
export { makeTamiyo, type Tamiyo, type TamiyoOptions, type TamiyoLink, type DecisionLogEntry, type PopulationResult } from "./tamiyo/tamiyo.ts";
export { resolveTamiyoConfig, STRATEGIES, TAMIYO_DEFAULTS, type TamiyoConfig, type Strategy } from "./tamiyo/config.ts";
export { decide, type Plan, type PolicyInput } from "./tamiyo/policy.ts";
export { Population, selectSeeds, type LayerProfile, type BlueprintOption, type SelectionCriteria } from "./tamiyo/population.ts";
export { telemetryAlerts, publishAlerts, TelemetryAggregator, AnomalyDetector, type LayerWindowSummary } from "./telemetry/index.ts";
