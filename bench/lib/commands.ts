import { randomUUID } from "node:crypto";
import type { SeedState } from "../../machines/lifecycle.ts";
import type { LifecycleTransitionCommand } from "../../src/protocol/messages.ts";

/**
 * A LifecycleTransitionCommand as a caller builds it, written out field by field. Not
 * `{ ...envelope(...), ... }`: spreading an object into a literal with more fields measured
 * ~19 µs a command on the 2-core dev box (against ~1 µs for this), which the benchmark would
 * charge to esper's round trip although it is the load generator's.
 */
export const lifecycleCommand = (source: string, layerId: string, seedId: number, target: SeedState, options: { readonly force?: boolean; readonly timeoutMs?: number } = {}): LifecycleTransitionCommand => ({
  message_type: "LifecycleTransitionCommand",
  message_id: randomUUID(),
  timestamp: Date.now() / 1000,
  source,
  version: "1.0",
  layer_id: layerId,
  seed_id: seedId,
  target_state: target,
  parameters: {},
  priority: "normal",
  timeout_ms: options.timeoutMs ?? 30_000,
  force: options.force ?? false,
  reason: "",
});
