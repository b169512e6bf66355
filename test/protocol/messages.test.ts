import { Result } from "effect";
import { describe, expect, it } from "vitest";
import * as P from "../../src/protocol/index.ts";
import { common, decoded, rejection, SAMPLES } from "./samples.ts";

describe("defaults of docs/protocol.md are applied on decode", () => {
  it("LifecycleTransitionCommand without options gets priority normal, timeout_ms 5000, force false", () => {
    expect(decoded({ ...common("LifecycleTransitionCommand"), layer_id: "L", seed_id: 1, target_state: "TRAINING" })).toEqual({
      ...common("LifecycleTransitionCommand"),
      layer_id: "L",
      seed_id: 1,
      target_state: "TRAINING",
      parameters: {},
      priority: "normal",
      timeout_ms: 5000,
      force: false,
      reason: "",
    });
  });

  it("a missing seed_id means every seed of the layer (null)", () => {
    const m = decoded({ ...common("LifecycleTransitionCommand"), layer_id: "L", target_state: "TRAINING" });
    expect(m).toMatchObject({ seed_id: null });
  });

  it("BlueprintUpdateCommand: rollback_on_failure true, timeout_ms 10000", () => {
    const m = decoded({ ...common("BlueprintUpdateCommand"), layer_id: "L", seed_id: 1, blueprint_id: "b", grafting_strategy: "momentum" });
    expect(m).toMatchObject({ configuration: {}, rollback_on_failure: true, validation_metrics: {}, priority: "normal", timeout_ms: 10_000 });
  });

  it("BatchCommand: atomic, stop_on_error, timeout_ms 30000", () => {
    const m = decoded({ ...common("BatchCommand"), commands: [SAMPLES.LifecycleTransitionCommand] });
    expect(m).toMatchObject({ atomic: true, stop_on_error: true, priority: "normal", timeout_ms: 30_000 });
  });

  it("EmergencyStopCommand: every layer, every seed, priority critical, timeout_ms 1000", () => {
    const m = decoded({ ...common("EmergencyStopCommand") });
    expect(m).toMatchObject({ layer_id: null, seed_id: null, reason: "", priority: "critical", timeout_ms: 1_000 });
  });

  it("null in a defaulted field decodes to the default, as absent does", () => {
    const m = decoded({ ...common("LifecycleTransitionCommand"), layer_id: "L", seed_id: 1, target_state: "TRAINING", priority: null, force: null });
    expect(m).toMatchObject({ priority: "normal", force: false });
  });

  it("each decoded message owns its default maps", () => {
    const raw = { ...common("LifecycleTransitionCommand"), layer_id: "L", seed_id: 1, target_state: "TRAINING" };
    const a = decoded(raw) as P.LifecycleTransitionCommand;
    const b = decoded(raw) as P.LifecycleTransitionCommand;
    expect(a.parameters).not.toBe(b.parameters);
  });
});

describe("optional common fields", () => {
  it("accepts correlation_id and metadata as null (the reference writes null) and drops them", () => {
    const m = decoded({ ...common("Heartbeat"), correlation_id: null, metadata: null, service_id: "s", uptime_seconds: 1, status: "healthy", load: 0 });
    expect(m).not.toHaveProperty("correlation_id");
    expect(m).not.toHaveProperty("metadata");
  });

  it("keeps them when present", () => {
    const m = decoded({ ...common("Heartbeat"), correlation_id: "c", metadata: { a: 1 }, service_id: "s", uptime_seconds: 1, status: "healthy", load: 0 });
    expect(m).toMatchObject({ correlation_id: "c", metadata: { a: 1 } });
  });

  it("drops keys the schema does not know", () => {
    const m = decoded({ ...common("Heartbeat"), service_id: "s", uptime_seconds: 1, status: "healthy", load: 0, extra: 1 });
    expect(m).not.toHaveProperty("extra");
  });
});

describe("target_state is matched case-insensitively", () => {
  it.each([
    ["germinated", "GERMINATED"],
    ["Training", "TRAINING"],
    ["rolled_back", "ROLLED_BACK"],
  ])("%s -> %s", (given, state) => {
    expect(decoded({ ...common("LifecycleTransitionCommand"), layer_id: "L", target_state: given })).toMatchObject({ target_state: state });
  });

  it("rejects a state that does not exist", () => {
    expect(rejection({ ...common("LifecycleTransitionCommand"), layer_id: "L", target_state: "SPROUTING" }).code).toBe("invalid_message");
  });
});

describe("enums travel lower-case", () => {
  it("rejects priority HIGH", () => {
    expect(rejection({ ...common("LifecycleTransitionCommand"), layer_id: "L", target_state: "TRAINING", priority: "HIGH" }).message).toMatch(/priority/);
  });
  it("rejects an unknown grafting strategy", () => {
    const m = { ...common("BlueprintUpdateCommand"), layer_id: "L", seed_id: 1, blueprint_id: "b", grafting_strategy: "magic" };
    expect(rejection(m).message).toMatch(/grafting_strategy/);
  });
});

describe("ids", () => {
  const cmd = (layer_id: unknown, seed_id: unknown = 0) => ({ ...common("LifecycleTransitionCommand"), layer_id, seed_id, target_state: "TRAINING" });
  it("accepts a 64-character layer id of [A-Za-z0-9_-]", () => {
    expect(decoded(cmd("a".repeat(63) + "-"))).toMatchObject({ layer_id: "a".repeat(63) + "-" });
  });
  it.each([["a".repeat(65)], [""], ["has space"], ["dots.are.out"], ["{L}"], [7]])("rejects layer id %j", (id) => {
    expect(rejection(cmd(id)).message).toMatch(/layer_id/);
  });
  it.each([[-1], [1.5], ["3"], [Number.NaN], [2 ** 60]])("rejects seed id %j", (id) => {
    expect(rejection(cmd("L", id)).message).toMatch(/seed_id/);
  });
  it("does not check seed_id against num_seeds: that is the layer's job", () => {
    expect(decoded(cmd("L", 1_000_000))).toMatchObject({ seed_id: 1_000_000 });
  });
});

describe("version", () => {
  const hb = (version: unknown) => ({ ...common("Heartbeat"), version, service_id: "s", uptime_seconds: 1, status: "healthy", load: 0 });
  it.each([["1.0"], ["1"], ["1.1"]])("accepts %j (major version 1)", (v) => {
    expect(decoded(hb(v))).toMatchObject({ version: v });
  });
  it.each([["2.0"], ["0.9"], ["1.0.0"], [1], [null], ["v1"]])("rejects %j", (v) => {
    expect(rejection(hb(v)).message).toMatch(/version/);
  });
});

describe("BatchCommand", () => {
  const batch = (commands: unknown[]) => ({ ...common("BatchCommand"), commands });
  it("rejects commands of two layers", () => {
    const other = { ...SAMPLES.BlueprintUpdateCommand, layer_id: "layer_2" };
    expect(rejection(batch([SAMPLES.LifecycleTransitionCommand, other])).message).toMatch(/one layer_id/);
  });
  it("rejects an emergency stop inside a batch", () => {
    expect(rejection(batch([SAMPLES.LifecycleTransitionCommand, SAMPLES.EmergencyStopCommand])).code).toBe("invalid_message");
  });
  it("rejects an empty batch", () => {
    expect(rejection(batch([])).code).toBe("invalid_message");
  });
  it("decodes nested commands with their own defaults", () => {
    const inner = { ...common("LifecycleTransitionCommand"), layer_id: "L", seed_id: 1, target_state: "training" };
    const m = decoded(batch([inner])) as P.BatchCommand;
    expect(m.commands[0]).toMatchObject({ target_state: "TRAINING", priority: "normal", timeout_ms: 5_000 });
  });
  it("commandLayer names the layer of its commands", () => {
    expect(P.commandLayer(SAMPLES.BatchCommand)).toBe("layer_1");
    expect(P.commandLayer(P.emergencyStopCommand({}))).toBeNull();
  });
});

describe("TelemetryBatch", () => {
  it("rejects a message that is not telemetry", () => {
    const m = { ...common("TelemetryBatch"), messages: [SAMPLES.SeedMetricsSnapshot, SAMPLES.CommandResult], batch_size: 2 };
    expect(rejection(m).message).toMatch(/messages.*\[1\]/);
  });
});

describe("CommandResult", () => {
  const result = (extra: object) => ({ ...common("CommandResult"), correlation_id: "cmd-1", layer_id: "L", success: true, execution_time_ms: 1, ...extra });
  it("derives code ok from success when a reference result has no code", () => {
    expect(decoded(result({}))).toMatchObject({ code: "ok", seed_id: null, error: null, details: {} });
  });
  it("derives code internal from a failure without code", () => {
    expect(decoded(result({ success: false, error: "boom" }))).toMatchObject({ code: "internal" });
  });
  it("keeps a given code", () => {
    expect(decoded(result({ success: false, code: "rate_limited" }))).toMatchObject({ code: "rate_limited" });
  });
  it("rejects an unknown code", () => {
    expect(rejection(result({ code: "nope" })).message).toMatch(/code/);
  });
  it("requires correlation_id", () => {
    const { correlation_id: _, ...uncorrelated } = result({});
    expect(rejection(uncorrelated).message).toMatch(/correlation_id/);
  });
});

describe("message builders", () => {
  it("fill message_id, timestamp, version and source", () => {
    const before = Date.now() / 1000;
    const m = P.lifecycleCommand({ layer_id: "L", seed_id: 0, target_state: "germinated" });
    expect(m.message_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(m.timestamp).toBeGreaterThanOrEqual(before);
    expect(m.timestamp).toBeLessThanOrEqual(Date.now() / 1000);
    expect(m).toMatchObject({ version: "1.0", source: P.DEFAULT_SOURCE, target_state: "GERMINATED", priority: "normal" });
  });

  it("give every message its own id", () => {
    const a = P.heartbeat({ service_id: "s", uptime_seconds: 0, status: "healthy", load: 0 });
    const b = P.heartbeat({ service_id: "s", uptime_seconds: 0, status: "healthy", load: 0 });
    expect(a.message_id).not.toBe(b.message_id);
  });

  it("throw a ProtocolError for an invalid message", () => {
    expect(() => P.lifecycleCommand({ layer_id: "no spaces", seed_id: 0, target_state: "TRAINING" })).toThrow(P.ProtocolError);
  });

  it("telemetryBatch counts its messages into batch_size", () => {
    expect(P.telemetryBatch({ messages: [SAMPLES.SeedMetricsSnapshot, SAMPLES.SeedMetricsSnapshot] }).batch_size).toBe(2);
  });
});

describe("rejectionResult", () => {
  const failure = (u: unknown, type?: string) => {
    const r = P.decodeMessage(u, type);
    if (Result.isSuccess(r)) throw new Error("expected a rejection");
    return r.failure;
  };

  it("answers an attributable command with a failed CommandResult carrying the code", () => {
    const bad = { ...common("LifecycleTransitionCommand"), layer_id: "L", seed_id: 4, target_state: "NOWHERE" };
    const result = P.rejectionResult(failure(bad), "L");
    expect(result).toMatchObject({ correlation_id: "m-1", layer_id: "L", seed_id: 4, success: false, code: "invalid_message" });
    expect(result?.error).toMatch(/target_state/);
  });

  it("attributes a batch to the layer of its first command", () => {
    const bad = { ...common("BatchCommand"), commands: [{ layer_id: "L9" }] };
    expect(failure(bad).partial).toMatchObject({ message_id: "m-1", layer_id: "L9", message_type: "BatchCommand" });
  });

  it("gives nothing for a message without a usable id: dead-letter it", () => {
    const bad = { ...common("LifecycleTransitionCommand"), message_id: 42, layer_id: "L" };
    expect(P.rejectionResult(failure(bad), "L")).toBeUndefined();
  });

  it("gives nothing for a message that is not a command", () => {
    const bad = { ...common("Heartbeat"), status: "asleep" };
    expect(P.rejectionResult(failure(bad), "L")).toBeUndefined();
  });
});

describe("isCommand", () => {
  it("is true for the four control commands and ResumeCommand only", () => {
    const commands = Object.values(SAMPLES).filter(P.isCommand).map((m) => m.message_type);
    expect(commands.sort()).toEqual(["BatchCommand", "BlueprintUpdateCommand", "EmergencyStopCommand", "LifecycleTransitionCommand", "ResumeCommand"]);
  });
});
