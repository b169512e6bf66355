/**
 * `esper`: the control and message planes, from Promise code. Importing it loads no TensorFlow.js.
 *
 * - Control plane: `startSystem` spawns layers of seed actors (XState v5); `LayerHost` is one
 *   layer and its seeds, whose live actors you can `subscribe` to and `waitFor`; the pure
 *   machines and the lifecycle as data.
 * - Message plane: `MemoryBus` (embedded) or `connectRedis` (Redis Streams); `startClient` sends
 *   commands to layers anywhere on the bus and follows their streams; one builder per command.
 * - Tamiyo: `startTamiyo` runs the controller and its policy on the layers' streams.
 *
 * Other entries: `esper/kasmina` (the TensorFlow.js data plane), `esper/protocol` (the wire
 * format, for programs that speak it), `esper/effect` (the same capabilities as Effects in a
 * Scope, for Effect code). Anything not exported from an entry is internal.
 */

// ---- control plane -----------------------------------------------------------------------------
export {
  startSystem,
  SystemConfigError,
  type SystemConfig,
  type LayerSpec,
  type EsperSystem,
  type RunningSystem,
  type SystemEvent,
  type TransitionOptions,
} from "./runtime/system.ts";
export { LayerHost, type LayerHostOptions, type Applied } from "./runtime/layer-host.ts";
export type { Closeable } from "./runtime/scoped.ts";
export {
  startFollowing,
  type RunningFollowers,
  type LayerFollowers,
  type LayerFollower,
  type FollowOptions,
  type BlueprintValidator,
  type BlueprintValidationRequest,
  type BlueprintVerdict,
  type FollowPosition,
} from "./runtime/layer-follower.ts";
export { seedMachine, requestTransition, type SeedContext, type SeedEvent } from "../machines/seed.ts";
export { layerMachine, type LayerEvent, type LayerEmitted } from "../machines/layer.ts";
export { controllerMachine, type ControllerEvent, type ControllerEmitted, type Decision } from "../machines/controller.ts";
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
export type { Metrics } from "../machines/seed-rules.ts";

// ---- message plane -----------------------------------------------------------------------------
export { MemoryBus, type MemoryBusOptions } from "./bus/memory-bus.ts";
export { connectRedis, type RedisConnection, type RedisTarget } from "./bus/connect-redis.ts";
export type { RedisBusOptions } from "./bus/redis-options.ts";
export { BusError, type Bus } from "./bus/bus.ts";
export { startClient, ClientClosedError, type EsperClient, type OpenClient, type ClientOptions, type SendOptions } from "./client/client.ts";
export {
  lifecycleCommand,
  blueprintUpdateCommand,
  batchCommand,
  emergencyStopCommand,
  resumeCommand,
} from "./protocol/make.ts";
export type {
  Message,
  Command,
  CommandResult,
  StateTransitionEvent,
  LifecycleTransitionCommand,
  BlueprintUpdateCommand,
  BatchCommand,
  EmergencyStopCommand,
  ResumeCommand,
  PerformanceAlert,
  LayerHealthReport,
} from "./protocol/messages.ts";

// ---- Tamiyo ------------------------------------------------------------------------------------
export { startTamiyo, TamiyoError, type Tamiyo, type RunningTamiyo, type TamiyoOptions, type TamiyoLink, type DecisionLogEntry, type PopulationResult } from "./tamiyo/tamiyo.ts";
export { STRATEGIES, TAMIYO_DEFAULTS, TamiyoConfigError, type TamiyoConfig, type Strategy } from "./tamiyo/config.ts";
export type { LayerProfile, SelectionCriteria } from "./tamiyo/population.ts";
export { telemetryAlerts, type TelemetryAlerts } from "./telemetry/alerts.ts";
