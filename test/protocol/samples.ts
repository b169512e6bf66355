import { Result } from "effect";
import * as P from "../../src/protocol/index.ts";

/** A message field set as a reader from another program would send it (the reference's envelope). */
export const common = (type: string) => ({ message_type: type, message_id: "m-1", timestamp: 1_700_000_000.5, source: "python", version: "1.0" });

/** What `u` decodes to; throws with the reason when it is refused. */
export const decoded = (u: unknown): P.Message => {
  const r = P.decodeMessage(u);
  if (Result.isFailure(r)) throw new Error(`expected a message, got: ${r.failure.message}`);
  return r.success;
};

/** Why `u` is refused; throws when it is accepted. */
export const rejection = (u: unknown): P.ProtocolError => {
  const r = P.decodeMessage(u);
  if (Result.isSuccess(r)) throw new Error(`expected a rejection, got ${JSON.stringify(r.success).slice(0, 200)}`);
  return r.failure;
};

/**
 * One message of every type, with non-default values where a default exists, so a round trip
 * that dropped a field back to its default would show.
 */

const at = { timestamp: 1_700_000_000.25, source: "test" };

const lifecycle = P.lifecycleCommand({
  ...at,
  layer_id: "layer_1",
  seed_id: 3,
  target_state: "GRAFTING",
  parameters: { reconstruction_loss: 0.001 },
  priority: "high",
  timeout_ms: 250,
  force: true,
  reason: "loss plateaued",
  correlation_id: "c-1",
  metadata: { trace: "abc" },
});
const blueprint = P.blueprintUpdateCommand({
  ...at,
  layer_id: "layer_1",
  seed_id: 4,
  blueprint_id: "bp-7",
  grafting_strategy: "drift_controlled",
  configuration: { hidden: 16 },
  rollback_on_failure: false,
  validation_metrics: { accuracy: 0.9 },
  priority: "low",
  timeout_ms: 20_000,
});
const snapshot = P.seedMetricsSnapshot({
  ...at,
  layer_id: "layer_1",
  seed_id: 2,
  lifecycle_state: "TRAINING",
  blueprint_id: "bp-7",
  metrics: { mean: 0.1, variance: 0.02, loss: Number.NaN, grad_norm: Infinity },
  error_count: 1,
  warning_count: 2,
  checkpoint_id: "ck-9",
  compute_stats: { flops: 1.5e9 },
  grafting_info: { alpha: 0.25, strategy: "linear" },
});
const health = P.layerHealthReport({
  ...at,
  layer_id: "layer_1",
  total_seeds: 8,
  active_seeds: 2,
  health_metrics: { "0": { mean: 0.5 }, "7": { mean: -0.5, sparsity: 0.9 } },
  performance_summary: { epoch: 12, loss: 0.3 },
  telemetry_window: [1_700_000_000, 1_700_000_010.5],
  anomalies: [{ seed_id: 7, kind: "spike" }],
});

export const SAMPLES: { readonly [T in P.MessageType]: P.MessageOf<T> } = {
  LifecycleTransitionCommand: lifecycle,
  BlueprintUpdateCommand: blueprint,
  BatchCommand: P.batchCommand({ ...at, commands: [lifecycle, blueprint], atomic: false, stop_on_error: false, priority: "critical", timeout_ms: 60_000 }),
  EmergencyStopCommand: P.emergencyStopCommand({ ...at, layer_id: "layer_1", seed_id: 5, reason: "divergence", priority: "high", timeout_ms: 500 }),
  ResumeCommand: P.resumeCommand({ ...at, layer_id: "layer_1", reason: "divergence handled", priority: "normal", timeout_ms: 750 }),
  CommandResult: P.commandResult({
    ...at,
    correlation_id: lifecycle.message_id,
    layer_id: "layer_1",
    seed_id: 3,
    success: false,
    error: "needs 100 epochs in TRAINING, has 12",
    code: "guard_failed",
    details: { duplicate: true },
    execution_time_ms: 0.42,
  }),
  StateTransitionEvent: P.stateTransitionEvent({
    ...at,
    layer_id: "layer_1",
    seed_id: 3,
    from_state: "TRAINING",
    to_state: "GRAFTING",
    reason: "ready",
    metrics_snapshot: { reconstruction_loss: 0.001 },
    transition_duration_ms: 1.5,
    triggered_by: "policy",
    success: true,
  }),
  BlueprintEvent: P.blueprintEvent({
    ...at,
    layer_id: "layer_1",
    seed_id: 4,
    blueprint_id: "bp-7",
    operation: "rolled_back",
    previous_blueprint_id: "bp-6",
    metrics_delta: { accuracy: -0.01 },
    success: true,
    details: { why: "worse" },
  }),
  CheckpointEvent: P.checkpointEvent({
    ...at,
    layer_id: "layer_1",
    seed_id: 4,
    checkpoint_id: "ck-9",
    operation: "recovered",
    checkpoint_size_bytes: 5_000_000_000,
    success: false,
    error: "disk full",
  }),
  PerformanceAlert: P.performanceAlert({
    ...at,
    layer_id: "layer_1",
    seed_id: null,
    alert_type: "threshold_exceeded",
    severity: "critical",
    metric_name: "loss",
    metric_value: 3.5,
    threshold: 2,
    details: { window: 10 },
    recommended_action: "cull seed 3",
  }),
  LayerHealthReport: health,
  SeedMetricsSnapshot: snapshot,
  TelemetryBatch: P.telemetryBatch({ ...at, messages: [snapshot, health], compression: "zlib", batch_size: 100 }),
  ServiceAnnouncement: P.serviceAnnouncement({
    ...at,
    service_type: "kasmina",
    service_id: "worker-1",
    capabilities: ["layer_1"],
    endpoints: { metrics: "http://localhost:9464" },
    health_check_endpoint: "http://localhost:9464/health",
  }),
  Heartbeat: P.heartbeat({ ...at, service_id: "worker-1", uptime_seconds: 12.5, metrics: { layers: 3 }, status: "degraded", load: 0.75 }),
  CoordinationRequest: P.coordinationRequest({
    ...at,
    operation: "election",
    resource_id: "tamiyo-leader",
    requester_id: "tamiyo-2",
    timeout_ms: 3_000,
    parameters: { ttl_ms: 10_000 },
  }),
  CoordinationResponse: P.coordinationResponse({
    ...at,
    request_id: "req-1",
    granted: false,
    holder_id: "tamiyo-1",
    wait_time_ms: 12,
    details: { term: 4 },
  }),
};

export const ALL_SAMPLES: readonly P.Message[] = Object.values(SAMPLES);
