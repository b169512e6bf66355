/**
 * `esper/effect`: esper's capabilities as Effects, for Effect code. Each `make*`/`run*` acquires
 * its resources in the caller's Scope and releases them when that Scope closes; errors are
 * tagged values in the error channel. The Promise entry (`esper`) wraps these same functions.
 */
export { makeSystem } from "../runtime/system.ts";
export { makeRedisBus, RedisBus, type RedisBusStats } from "../bus/redis-bus.ts";
export { BusService } from "../bus/bus.ts";
export { makeClient } from "../client/client.ts";
export { runLayerBridge, type LayerBridge, type BridgeStats } from "../bridge/bridge.ts";
export { BRIDGE_DEFAULTS, type BridgeOptions } from "../bridge/options.ts";
export { LayerDataLost, BridgeRestoreError } from "../bridge/restore.ts";
export { listDeadLetters, replayDeadLetter, type DeadLetterRecord, type ListDeadLettersOptions } from "../bus/dead-letters.ts";
export { makeTamiyo } from "../tamiyo/tamiyo.ts";
export { publishAlerts, type PublishAlertsOptions } from "../telemetry/alerts.ts";
export { coordinate, type CoordinateOptions } from "../coordination/coordinate.ts";
export { followLayers } from "../runtime/layer-follower.ts";
