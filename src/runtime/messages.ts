/**
 * The messages the runtime builds on its hot path. Unlike the protocol's builders (make.ts),
 * these do not run the Schema decoder on what they build (about 16 us a message): the types
 * already guarantee the shape, and a command's answer must cost less than the command.
 */
import type { Metrics } from "../../machines/seed-rules.ts";
import type { ResultCode, SeedState } from "../../machines/lifecycle.ts";
import type { Command, CommandResult, LifecycleTransitionCommand, StateTransitionEvent } from "../protocol/messages.ts";
import { newMessageId } from "../protocol/message-id.ts";

/** Every command a layer hosts: the protocol's control-stream commands. */
export type CommandMessage = Command;
export type HostedCommand = Command;

export const envelope = <T extends string>(messageType: T, source: string, correlationId?: string) => ({
  message_type: messageType,
  message_id: newMessageId(),
  timestamp: Date.now() / 1000,
  source,
  version: "1.0" as const,
  ...(correlationId !== undefined ? { correlation_id: correlationId } : {}),
});

/**
 * The hot command, field by field in one literal: spreading an envelope into it made an object
 * V8 could not give a fixed shape, and every reader of it paid for that.
 */
export const lifecycleTransitionCommand = (c: {
  readonly source: string;
  readonly timestamp: number;
  readonly layerId: string;
  readonly seedId: number | null;
  readonly target: SeedState;
  readonly metrics?: Metrics | undefined;
  readonly timeoutMs: number;
  readonly force: boolean;
  readonly reason: string;
}): LifecycleTransitionCommand => ({
  message_type: "LifecycleTransitionCommand",
  message_id: newMessageId(),
  timestamp: c.timestamp,
  source: c.source,
  version: "1.0",
  layer_id: c.layerId,
  seed_id: c.seedId,
  target_state: c.target,
  parameters: c.metrics ? { metrics: c.metrics } : {},
  priority: "normal",
  timeout_ms: c.timeoutMs,
  force: c.force,
  reason: c.reason,
});

export const commandResult = (r: {
  readonly source: string;
  readonly layerId: string;
  readonly command: { readonly message_id: string };
  readonly seedId: number | null;
  readonly code: ResultCode;
  readonly error: string | null;
  readonly details: Readonly<Record<string, unknown>>;
  readonly elapsedMs: number;
}): CommandResult => ({
  // Field by field, not spread from envelope(): this runs once per command and per transition.
  message_type: "CommandResult",
  message_id: newMessageId(),
  timestamp: Date.now() / 1000,
  source: r.source,
  version: "1.0",
  correlation_id: r.command.message_id,
  layer_id: r.layerId,
  seed_id: r.seedId,
  success: r.code === "ok",
  error: r.code === "ok" ? null : r.error,
  code: r.code,
  details: r.details,
  execution_time_ms: r.elapsedMs,
});

export const stateTransitionEvent = (t: {
  readonly source: string;
  readonly correlationId: string;
  readonly layerId: string;
  readonly seedId: number;
  readonly from: SeedState;
  readonly to: SeedState;
  readonly reason: string;
  readonly metrics: Metrics;
  readonly durationMs: number;
  readonly triggeredBy: "user" | "system" | "policy";
}): StateTransitionEvent => ({
  message_type: "StateTransitionEvent",
  message_id: newMessageId(),
  timestamp: Date.now() / 1000,
  source: t.source,
  version: "1.0",
  correlation_id: t.correlationId,
  layer_id: t.layerId,
  seed_id: t.seedId,
  from_state: t.from,
  to_state: t.to,
  reason: t.reason,
  metrics_snapshot: t.metrics,
  transition_duration_ms: t.durationMs,
  triggered_by: t.triggeredBy,
  success: true,
});
