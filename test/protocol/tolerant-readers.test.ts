/**
 * Readers are tolerant where the reference implementation writes looser types than esper's
 * (black-box finding 9: its own messages were refused), and strict where input is hostile
 * (finding 4: a source, a batch or a map of any size cost the worker memory and seconds).
 */
import { Result } from "effect";
import { describe, expect, it } from "vitest";
import type { EntryFields } from "../../src/bus/bus.ts";
import * as P from "../../src/protocol/index.ts";
import { common, decoded, rejection } from "./samples.ts";

/** As the Python bus writes it: JSON text, no `enc`. */
const referenceEntry = (m: object): EntryFields => ({ data: new TextEncoder().encode(JSON.stringify(m)), type: (m as { message_type: string }).message_type });

describe("the reference implementation's own messages are read", () => {
  it("PerformanceAlert with threshold null (its Optional[float] default)", () => {
    const alert = decoded({
      ...common("PerformanceAlert"),
      layer_id: "L",
      seed_id: null,
      alert_type: "anomaly",
      severity: "warning",
      metric_name: "loss",
      metric_value: 3.2,
      threshold: null,
      recommended_action: null,
      details: {},
    });
    expect(alert).toMatchObject({ message_type: "PerformanceAlert", threshold: null, metric_value: 3.2 });
  });

  it("CoordinationResponse with wait_time_ms null", () => {
    expect(decoded({ ...common("CoordinationResponse"), request_id: "r", granted: false, holder_id: null, wait_time_ms: null, details: {} })).toMatchObject({
      wait_time_ms: null,
      granted: false,
    });
  });

  it("Heartbeat with load as a map of loads, and as one number", () => {
    const base = { ...common("Heartbeat"), service_id: "kasmina-1", uptime_seconds: 12, metrics: {}, status: "healthy" };
    expect(decoded({ ...base, load: { cpu: 0.4, memory: 0.7 } })).toMatchObject({ load: { cpu: 0.4, memory: 0.7 } });
    expect(decoded({ ...base, load: 0.5 })).toMatchObject({ load: 0.5 });
  });

  it("a TelemetryBatch whose SeedMetricsSnapshots carry an integer blueprint_id and a null grafting_info", () => {
    const snapshot = { ...common("SeedMetricsSnapshot"), layer_id: "L", seed_id: 2, lifecycle_state: "training", blueprint_id: 7, metrics: { loss: 0.2 }, grafting_info: null };
    const batch = decoded({ ...common("TelemetryBatch"), messages: [snapshot, { ...snapshot, seed_id: 3, blueprint_id: null }], compression: null, batch_size: 2 });
    if (batch.message_type !== "TelemetryBatch") throw new Error("not a batch");
    expect(batch.messages.map((m) => (m.message_type === "SeedMetricsSnapshot" ? [m.blueprint_id, m.lifecycle_state, m.grafting_info] : null))).toEqual([
      ["7", "TRAINING", {}],
      [null, "TRAINING", {}],
    ]);
  });

  it.each([
    ["immediate", "linear"],
    ["gradual", "linear"],
    ["conditional", "stability"],
    ["adaptive", "adaptive"],
    ["safe", "drift_controlled"],
    ["GRADUAL", "linear"],
    ["Momentum", "momentum"],
  ])("grafting_strategy %s is read as %s", (written, read) => {
    const command = decoded({ ...common("BlueprintUpdateCommand"), layer_id: "L", seed_id: 1, blueprint_id: "residual_mlp", grafting_strategy: written });
    expect(command).toMatchObject({ grafting_strategy: read });
  });

  it("refuses a grafting strategy nobody knows, naming the field", () => {
    expect(rejection({ ...common("BlueprintUpdateCommand"), layer_id: "L", seed_id: 1, blueprint_id: "b", grafting_strategy: "yolo" }).message).toMatch(/grafting_strategy/);
  });

  it("whole reference entries (JSON, no enc) of each of these decode from the wire", () => {
    const entries = [
      { ...common("PerformanceAlert"), layer_id: "L", alert_type: "degradation", severity: "critical", metric_name: "acc", metric_value: 0.1, threshold: null },
      { ...common("CoordinationResponse"), request_id: "r", granted: true, holder_id: "me", wait_time_ms: null },
      { ...common("Heartbeat"), service_id: "s", uptime_seconds: 1, status: "degraded", load: { cpu: 1 } },
    ];
    for (const m of entries) expect(Result.isSuccess(P.decodeEntry("morphogenetic.coordination", referenceEntry(m)))).toBe(true);
  });
});

describe("bounds on what a message may hold (hostile input costs a look, not a decode)", () => {
  const command = (extra: object) => ({ ...common("LifecycleTransitionCommand"), layer_id: "L", seed_id: 1, target_state: "GERMINATED", ...extra });

  it("a source longer than 256 characters is invalid_message (a layer keeps a rate counter per source)", () => {
    expect(decoded(command({ source: "s".repeat(256) })).source).toHaveLength(256);
    expect(rejection(command({ source: "s".repeat(257) })).code).toBe("invalid_message");
  });

  it("a batch of more than 1,000 commands is refused before any of them is decoded", () => {
    const one = command({});
    // 100,000 orders decoded by the Schema took about a second; refused by their count, none is even looked at.
    const looked = new Set<number>();
    const watched = (i: number) => new Proxy(one, { get: (target, key, receiver) => (looked.add(i), Reflect.get(target, key, receiver)), ownKeys: (target) => (looked.add(i), Reflect.ownKeys(target)) });
    const r = rejection({ ...common("BatchCommand"), commands: Array.from({ length: 100_000 }, (_, i) => watched(i)) });
    expect(r.message).toMatch(/100000 commands, over the limit of 1000/);
    // The first at most, to say which layer the refusal is for.
    expect([...looked].filter((i) => i > 0)).toEqual([]);
    expect(Result.isSuccess(P.decodeMessage({ ...common("BatchCommand"), commands: Array.from({ length: 1_000 }, () => one) }))).toBe(true);
  });

  it("a command's parameters may hold 256 keys, not more", () => {
    const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
    expect(Result.isSuccess(P.decodeMessage(command({ parameters: keys(256) })))).toBe(true);
    expect(rejection(command({ parameters: keys(257) })).message).toMatch(/at most 256 keys/);
    expect(rejection(command({ metadata: keys(1_000) })).code).toBe("invalid_message");
  });

  it("nesting deeper than 32, strings over 64 KiB and lists over 65,536 entries are refused with the limit they passed", () => {
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = { x: deep };
    expect(rejection(command({ parameters: { deep } })).message).toMatch(/nests maps and lists more than 32 deep/);
    expect(rejection(command({ reason: "r".repeat(70_000) })).message).toMatch(/string of 70000 characters/);
    const report = { ...common("LayerHealthReport"), layer_id: "L", total_seeds: 1, active_seeds: 0, telemetry_window: [0, 1], anomalies: new Array(70_000).fill(0) };
    expect(rejection(report).message).toMatch(/list of 70000 entries/);
  });

  it("a message nested past the call stack is an answer, not a crash", () => {
    let deep: unknown[] = [];
    const root = deep;
    for (let i = 0; i < 200_000; i++) {
      const next: unknown[] = [];
      deep.push(next);
      deep = next;
    }
    expect(rejection(command({ parameters: { root } })).code).toBe("invalid_message");
  });

  it("every field of an entry counts toward its size, not only data", () => {
    const fields = P.encodeEntry(P.lifecycleCommand({ layer_id: "L", seed_id: 1, target_state: "GERMINATED" }), { stream: "morphogenetic.control.layer.{L}" });
    expect(Result.isSuccess(P.decodeEntry("morphogenetic.control.layer.{L}", fields))).toBe(true);
    const padded = { ...fields, padding: "x".repeat(10 * 1024 * 1024) } as EntryFields;
    const r = P.decodeEntry("morphogenetic.control.layer.{L}", padded);
    expect(Result.isFailure(r) && r.failure.code).toBe("too_large");
    expect(Result.isFailure(r) && r.failure.message).toMatch(/fields add up to/);
  });
});
