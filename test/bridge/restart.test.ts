/**
 * A worker that stops and another that starts on the same namespace: the layer is rebuilt from
 * `P.state.layer.{L}` and its meta key (seeds, blueprints, the emergency stop), and what comes
 * next is judged from there. `P.control.all` reaches every layer once, including one whose
 * worker was down when the stop was sent. Each behaviour runs on the embedded bus and on Redis.
 */
import { beforeEach, describe, expect, test } from "vitest";
import { emergencyStopCommand, resumeCommand } from "../../src/protocol/make.ts";
import { blueprint, emergencyStop, lifecycle } from "../runtime/commands.ts";
import {
  BUS_KINDS,
  commandFields,
  openClient,
  openFixture,
  pendingOf,
  publishRaw,
  drained,
  resultsOf,
  settled,
  startBridge,
  transitionsOf,
  waitFor,
  type Fixture,
} from "./harness.ts";

describe.each(BUS_KINDS)("on %s, a restarted worker", (kind) => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await openFixture(kind);
  });

  test("finds its seeds where the last one left them, and judges further commands from there", async () => {
    const first = await startBridge(fx);
    const client = await openClient(fx);
    for (const [seed, target] of [[0, "GERMINATED"], [0, "TRAINING"], [1, "GERMINATED"], [1, "CANCELLED"], [2, "GERMINATED"]] as const) {
      expect((await client.send(lifecycle("a", seed, target))).code).toBe("ok");
    }
    expect((await client.send(blueprint("a", 2, "bp-residual-7", "momentum"))).code).toBe("ok");
    const before = first.host.seeds();
    await first.close();

    const second = await startBridge(fx);
    expect(second.host.seeds().map((s) => s.state)).toEqual(["TRAINING", "CANCELLED", "GERMINATED", "DORMANT"]);
    expect(second.host.seeds()).toEqual(before);
    expect(second.host.seed(2).context).toMatchObject({ blueprintId: "bp-residual-7", strategy: "momentum" });
    expect([0, 1, 2, 3].map((i) => second.host.table.row(i).state)).toEqual(["TRAINING", "CANCELLED", "GERMINATED", "DORMANT"]);
    expect(await client.send(lifecycle("a", 0, "GRAFTING", { metrics: { reconstruction_loss: 0.001 } }))).toMatchObject({
      code: "guard_failed",
      details: { from_state: "TRAINING", guard: "min_epochs" },
    });
    expect((await client.send(lifecycle("a", 1, "TRAINING", { force: true }))).code).toBe("terminal_state");
    expect(await client.send(lifecycle("a", 2, "TRAINING"))).toMatchObject({ code: "ok", details: { from_state: "GERMINATED" } });
    expect(await client.send(lifecycle("a", 3, "GERMINATED"))).toMatchObject({ code: "ok", details: { from_state: "DORMANT" } });
  });

  test("is still emergency-stopped, with the stop's reason, until a resume, which a third worker finds too", async () => {
    const first = await startBridge(fx);
    const client = await openClient(fx);
    expect((await client.send(lifecycle("a", 0, "GERMINATED"))).code).toBe("ok");
    expect((await client.send(emergencyStop("a", null, "NaN in the loss"))).code).toBe("ok");
    expect((await client.send(emergencyStop("a", null, "a second stop"))).code).toBe("ok");
    await first.close();

    const second = await startBridge(fx);
    expect(second.host.isStopped).toBe(true);
    expect(second.host.seed(0).state).toBe("CANCELLED");
    const refused = await client.send(lifecycle("a", 1, "GERMINATED"));
    expect(refused).toMatchObject({ code: "emergency_stopped" });
    expect(refused.error).toMatch(/\(NaN in the loss\)/);
    expect((await client.send(resumeCommand({ layer_id: "a", source: "test" }))).code).toBe("ok");
    await second.close();

    const third = await startBridge(fx);
    expect(third.host.isStopped).toBe(false);
    expect((await client.send(lifecycle("a", 1, "GERMINATED"))).code).toBe("ok");
  });
});

describe.each(BUS_KINDS)("on %s, P.control.all", (kind) => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await openFixture(kind);
  });

  const stopEverything = (timeoutMs = 1_000) => emergencyStopCommand({ layer_id: null, seed_id: null, reason: "operator: stop everything", timeout_ms: timeoutMs, source: "operator" });

  test("an emergency stop without layer_id reaches every layer exactly once, a layer whose worker was down included", async () => {
    const a = await startBridge(fx, { layerId: "a" });
    const b = await startBridge(fx, { layerId: "b" });
    const client = await openClient(fx);
    expect((await client.send(lifecycle("b", 0, "GERMINATED"))).code).toBe("ok");
    // b's worker goes down; its group on P.control.all stays.
    await b.close();

    // A stop whose timeout_ms passes while b is down: stopping is never too late.
    const stop = stopEverything(100);
    const answers = client.stopAll(stop, ["a", "b"], { timeoutMs: 10_000 });
    await waitFor("a's answer", async () => (await resultsOf(fx, "a", stop.message_id)).length === 1);
    expect(a.host.isStopped).toBe(true);
    const b2 = await startBridge(fx, { layerId: "b" });
    const results = await answers;
    expect(results.map((r) => [r.layer_id, r.code, r.details.stopped]).sort()).toEqual([
      ["a", "ok", true],
      ["b", "ok", true],
    ]);
    expect(b2.host.isStopped).toBe(true);
    expect(b2.host.seed(0).state).toBe("CANCELLED");
    expect(await transitionsOf(fx, "b", stop.message_id)).toMatchObject([{ seed_id: 0, from_state: "GERMINATED", to_state: "CANCELLED" }]);

    // Once each: no second answer, and a further restart finds nothing left to apply.
    await b2.close();
    const b3 = await startBridge(fx, { layerId: "b" });
    await drained(fx, fx.names.controlAll, "kasmina.b");
    expect(b3.bridge.stats().entries).toBe(0);
    expect(await resultsOf(fx, "a", stop.message_id)).toHaveLength(1);
    expect(await resultsOf(fx, "b", stop.message_id)).toHaveLength(1);
    expect(await pendingOf(fx, fx.names.controlAll, "kasmina.a")).toEqual([]);
    expect(await pendingOf(fx, fx.names.controlAll, "kasmina.b")).toEqual([]);
    expect((await client.send(lifecycle("a", 1, "GERMINATED"))).code).toBe("emergency_stopped");
    expect((await client.send(lifecycle("b", 1, "GERMINATED"))).code).toBe("emergency_stopped");
  });

  test("a command naming one layer on P.control.all is answered by that layer only", async () => {
    const a = await startBridge(fx, { layerId: "a" });
    const b = await startBridge(fx, { layerId: "b" });
    const command = lifecycle("a", 0, "GERMINATED");
    await publishRaw(fx, fx.names.controlAll, commandFields(fx, command, { stream: fx.names.controlAll }));
    await settled(a, 1);
    await settled(b, 1);
    expect(await resultsOf(fx, "a", command.message_id)).toMatchObject([{ code: "ok", layer_id: "a" }]);
    expect(await resultsOf(fx, "b")).toEqual([]);
    expect(a.host.seed(0).state).toBe("GERMINATED");
    expect(b.host.seed(0).state).toBe("DORMANT");
    expect(await pendingOf(fx, fx.names.controlAll, "kasmina.b")).toEqual([]);
  });
});
