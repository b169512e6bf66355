/**
 * Black-box findings 8 and 9: what becomes of input from other programs.
 * 8. Bad-schema commands were answered but not dead-lettered, so `esper dlq list` did not show
 *    them; and a dead letter overwrote original fields named `stream`, `id` or `code`, so a
 *    replay did not restore them.
 * 9. The reference implementation's own messages were refused where its types are looser than
 *    esper's, and esper's follower skipped what it could not decode without a word.
 */
import { beforeAll, describe, expect, test } from "vitest";
import { esper, esperRunning } from "../support/esper-cli.ts";
import type { WorkerProcess } from "../support/worker-process.ts";
import { keysOf, lifecycle, pack, readAll, resultOf, until, xadd } from "./outside.ts";
import { privateRedis } from "./private-redis.ts";

const env = privateRedis();
let worker: WorkerProcess;
const NS = "wire";
const k = keysOf(NS, "L");
beforeAll(async () => {
  worker = env.worker({ namespace: NS, layers: ["L"], seeds: 8 });
  await worker.start(undefined);
}, 60_000);

const cli = (...args: string[]) => esper([...args, "--redis", env.url, "--namespace", NS]);

describe("bad input from another program", () => {
  test("a command that breaks its schema is answered invalid_message and listed by esper dlq list", async () => {
    const bad = { ...lifecycle("L", 0, "GERMINATED"), seed_id: "zero" };
    await xadd(env.admin, k.control, bad);
    expect(await resultOf(env.admin, k.events, bad.message_id)).toMatchObject({ code: "invalid_message", success: false });
    const listed = await cli("dlq", "list", "--layer", "L");
    expect(listed.code).toBe(0);
    const letters = listed.stdout.trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(letters).toContainEqual(expect.objectContaining({ stream: k.control, code: "invalid_message", type: "LifecycleTransitionCommand" }));
  }, 60_000);

  test("an undecodable entry with fields named stream, id and code keeps them in its letter, and a replay restores every field", async () => {
    const before = (await readAll(env.admin, k.dlq)).length;
    const data = Buffer.from([0xc1, 0xff, 0x00]);
    const id = await env.admin.xadd(k.control, "*", "data", data, "type", "LifecycleTransitionCommand", "enc", "msgpack", "stream", "mine", "id", "also-mine", "code", "42", "orig:x", "y");
    await until("the letter", async () => (await readAll(env.admin, k.dlq)).length > before);
    const letter = (await readAll(env.admin, k.dlq)).at(-1)!;
    expect(letter.fields.stream?.toString()).toBe(k.control);
    expect(letter.fields.id?.toString()).toBe(id);
    expect(letter.fields["orig:stream"]?.toString()).toBe("mine");
    expect(letter.fields["orig:id"]?.toString()).toBe("also-mine");
    expect(letter.fields["orig:code"]?.toString()).toBe("42");
    expect(letter.fields["orig:orig:x"]?.toString()).toBe("y");

    // Replayed, the entry comes back exactly as it was written (and is dead-lettered again, being garbage).
    const replay = await cli("dlq", "replay", "--layer", "L", "--id", letter.id);
    expect(replay.code, replay.stderr).toBe(0);
    const newId = (JSON.parse(replay.stdout) as { new_id: string }).new_id;
    await until("the replayed letter", async () => (await readAll(env.admin, k.dlq)).some((l) => l.fields.id?.toString() === newId));
    const copy = (await readAll(env.admin, k.dlq)).find((l) => l.fields.id?.toString() === newId)!;
    for (const [name, value] of Object.entries({ stream: "mine", id: "also-mine", code: "42", "orig:x": "y" })) {
      expect(copy.fields[`orig:${name}`]?.toString(), name).toBe(value);
    }
    expect(copy.fields.data?.equals(data)).toBe(true);
  }, 60_000);
});

describe("the reference implementation's own messages", () => {
  const common = (type: string) => ({ message_type: type, message_id: `ref-${type}-${Date.now()}`, timestamp: Date.now() / 1000, source: "python", version: "1.0", correlation_id: null });
  /** As the reference bus writes an entry: JSON text, no `enc` field. */
  const referenceEntry = (stream: string, m: { message_type: string }) => env.admin.xadd(stream, "*", "data", JSON.stringify(m), "type", m.message_type);

  test("a BlueprintUpdateCommand with the reference's strategy name `gradual` is applied (read as linear)", async () => {
    const update = {
      ...common("BlueprintUpdateCommand"),
      layer_id: "L",
      seed_id: 5,
      blueprint_id: "residual_mlp",
      grafting_strategy: "gradual",
      configuration: {},
      rollback_on_failure: true,
      validation_metrics: {},
      priority: "normal",
      timeout_ms: 10_000,
    };
    await referenceEntry(k.control, update);
    expect(await resultOf(env.admin, k.events, update.message_id)).toMatchObject({ code: "ok", details: { grafting_strategy: "linear" } });
  }, 60_000);

  test("esper events prints the reference's PerformanceAlert (threshold null) and TelemetryBatch (integer blueprint_id), and says what it cannot read", async () => {
    const events = esperRunning(["events", "--layer", "L", "--redis", env.url, "--namespace", NS]);
    const telemetry = esperRunning(["events", "--layer", "L", "--telemetry", "--redis", env.url, "--namespace", NS]);
    try {
      await events.until("the follow line", (_out, err) => /following events/.test(err));
      await telemetry.until("the follow line", (_out, err) => /following telemetry/.test(err));
      const alert = { ...common("PerformanceAlert"), layer_id: "L", seed_id: null, alert_type: "anomaly", severity: "warning", metric_name: "loss", metric_value: 3, threshold: null, details: {}, recommended_action: null };
      await referenceEntry(k.events, alert);
      const garbage = await env.admin.xadd(k.events, "*", "data", pack({ message_type: "PerformanceAlert" }), "type", "PerformanceAlert", "enc", "msgpack");
      const snapshot = { ...common("SeedMetricsSnapshot"), layer_id: "L", seed_id: 2, lifecycle_state: "training", blueprint_id: 7, metrics: { loss: 0.5 }, grafting_info: null };
      const batch = { ...common("TelemetryBatch"), messages: [snapshot], compression: null, batch_size: 1 };
      await referenceEntry(k.telemetry, batch);
      await events.until("the alert", (out) => out.includes(alert.message_id));
      await events.until("a word on the garbage", (_out, err) => err.includes(garbage!));
      await telemetry.until("the batch", (out) => out.includes(batch.message_id));
      const printed = (await events.stop()).stdout.split("\n").filter((l) => l.includes(alert.message_id)).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(printed[0]).toMatchObject({ message_type: "PerformanceAlert", threshold: null });
      const batchLine = (await telemetry.stop()).stdout.split("\n").find((l) => l.includes(batch.message_id))!;
      expect((JSON.parse(batchLine) as { messages: Array<{ blueprint_id: unknown }> }).messages[0]!.blueprint_id).toBe("7");
    } finally {
      await events.stop();
      await telemetry.stop();
    }
  }, 60_000);
});
