/**
 * Tamiyo, the controller machine: telemetry buffering, the decide -> policy -> dispatch cycle,
 * outstanding commands and their timeouts (time only moves with `clock` events), bus outages,
 * emergency. The policy is a fromPromise actor the test provides and resolves by hand.
 */
import { describe, expect, test } from "vitest";
import { createActor, fromPromise, initialTransition, transition, waitFor } from "xstate";
import { controllerMachine, expiredAt, type ControllerEmitted, type Decision, type PolicyInput } from "../../machines/controller.ts";

/** A policy whose answer the test gives when it chooses; records what it was asked. */
const handPolicy = () => {
  const asked: PolicyInput[] = [];
  let settle: { resolve: (d: readonly Decision[]) => void; reject: (e: unknown) => void } | null = null;
  const logic = fromPromise<readonly Decision[], PolicyInput>(({ input }) => {
    asked.push(input);
    return new Promise((resolve, reject) => {
      settle = { resolve, reject };
    });
  });
  return {
    logic,
    asked,
    answer: (decisions: readonly Decision[]) => settle!.resolve(decisions),
    fail: (error: unknown) => settle!.reject(error),
  };
};

const decision = (commandId: string, timeoutMs = 5_000, layerId = "dense1"): Decision => ({
  commandId,
  layerId,
  timeoutMs,
  command: { target_state: "GERMINATED", seed_id: 0 },
});

const tamiyo = (options: { telemetryLimit?: number; now?: number } = {}) => {
  const policy = handPolicy();
  const actor = createActor(controllerMachine.provide({ actors: { policy: policy.logic } }), { input: options });
  const emitted: ControllerEmitted[] = [];
  actor.on("*", (e) => emitted.push(e as ControllerEmitted));
  actor.start();
  return {
    actor,
    policy,
    emitted,
    state: () => actor.getSnapshot().value,
    context: () => actor.getSnapshot().context,
    send: actor.send.bind(actor),
    /** telemetry -> decide -> policy answers `decisions` -> commanding. */
    decideOn: async (decisions: readonly Decision[]) => {
      actor.send({ type: "telemetry", report: { loss: 1 } });
      actor.send({ type: "decide" });
      expect(actor.getSnapshot().value).toBe("deciding");
      policy.answer(decisions);
      await waitFor(actor, (s) => !s.matches("deciding"));
    },
  };
};

describe("telemetry", () => {
  test("is buffered oldest first while observing", () => {
    const t = tamiyo();
    for (const n of [1, 2, 3]) t.send({ type: "telemetry", report: { n } });
    expect(t.context().telemetry).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(t.context().droppedTelemetry).toBe(0);
  });

  test("is bounded: past the limit the oldest report is dropped and the drop counted", () => {
    const t = tamiyo({ telemetryLimit: 3 });
    for (let n = 1; n <= 5; n++) t.send({ type: "telemetry", report: n });
    expect(t.context().telemetry).toEqual([3, 4, 5]);
    expect(t.context().droppedTelemetry).toBe(2);
  });

  test("the default limit is 1000", () => {
    const t = tamiyo();
    for (let n = 0; n < 1_001; n++) t.send({ type: "telemetry", report: n });
    expect(t.context().telemetry).toHaveLength(1_000);
    expect(t.context().droppedTelemetry).toBe(1);
  });
});

describe("decide -> deciding -> policy -> commanding", () => {
  test("decide without telemetry stays observing and asks no policy", () => {
    const t = tamiyo();
    t.send({ type: "decide" });
    expect(t.state()).toBe("observing");
    expect(t.policy.asked).toEqual([]);
  });

  test("the policy is asked with the buffered telemetry and the outstanding commands", async () => {
    const t = tamiyo();
    await t.decideOn([decision("c1", 100)]);
    t.send({ type: "dispatched", at: 10 });
    t.send({ type: "telemetry", report: "r2" });
    t.send({ type: "decide" });
    expect(t.policy.asked[1]).toEqual({ telemetry: ["r2"], outstanding: [{ commandId: "c1", layerId: "dense1", sentAt: 10, timeoutMs: 100 }] });
  });

  test("decisions move Tamiyo to commanding, which emits dispatch with them and clears the telemetry it decided on", async () => {
    const t = tamiyo();
    const decisions = [decision("c1"), decision("c2", 1_000, "dense2")];
    await t.decideOn(decisions);
    expect(t.state()).toBe("commanding");
    expect(t.emitted).toEqual([{ type: "dispatch", decisions }]);
    expect(t.context().pending).toEqual(decisions);
    expect(t.context().telemetry).toEqual([]);
  });

  test("dispatched records each decision as outstanding with its sentAt, and returns to observing", async () => {
    const t = tamiyo();
    await t.decideOn([decision("c1", 500), decision("c2", 1_000, "dense2")]);
    t.send({ type: "dispatched", at: 42_000 });
    expect(t.state()).toBe("observing");
    expect(t.context().pending).toEqual([]);
    expect(t.context().outstanding).toEqual({
      c1: { commandId: "c1", layerId: "dense1", sentAt: 42_000, timeoutMs: 500 },
      c2: { commandId: "c2", layerId: "dense2", sentAt: 42_000, timeoutMs: 1_000 },
    });
  });

  test("a policy that decides nothing returns to observing without a dispatch", async () => {
    const t = tamiyo();
    await t.decideOn([]);
    expect(t.state()).toBe("observing");
    expect(t.emitted).toEqual([]);
    expect(t.context().telemetry).toEqual([]);
  });

  test("a failing policy returns to observing and keeps the telemetry for the next decision", async () => {
    const t = tamiyo();
    t.send({ type: "telemetry", report: "kept" });
    t.send({ type: "decide" });
    t.policy.fail(new Error("policy exploded"));
    await waitFor(t.actor, (s) => !s.matches("deciding"));
    expect(t.state()).toBe("observing");
    expect(t.context().telemetry).toEqual(["kept"]);
    expect(t.emitted).toEqual([]);
    expect(t.actor.getSnapshot().status).toBe("active");
  });

  // Regression: finishing a decision cleared the whole buffer, so reports that arrived while the
  // policy ran (which it never saw) were lost without being counted as dropped.
  test("telemetry that arrives while the policy runs is kept for the next decision", async () => {
    const t = tamiyo();
    t.send({ type: "telemetry", report: "seen" });
    t.send({ type: "decide" });
    t.send({ type: "telemetry", report: "arrived while deciding" });
    t.policy.answer([decision("c1")]);
    await waitFor(t.actor, (s) => s.matches("commanding"));
    expect(t.policy.asked[0]!.telemetry).toEqual(["seen"]);
    expect(t.context().telemetry).toEqual(["arrived while deciding"]);
    expect(t.context().droppedTelemetry).toBe(0);
  });

  test("when the buffer overflows while the policy runs, only the reports it did not see are kept", async () => {
    const t = tamiyo({ telemetryLimit: 2 });
    t.send({ type: "telemetry", report: "a" });
    t.send({ type: "telemetry", report: "b" });
    t.send({ type: "decide" });
    t.send({ type: "telemetry", report: "c" });
    expect(t.context().telemetry).toEqual(["b", "c"]);
    t.policy.answer([]);
    await waitFor(t.actor, (s) => s.matches("observing"));
    expect(t.context().telemetry).toEqual(["c"]);
    expect(t.context().droppedTelemetry).toBe(1);
  });

  test("telemetry keeps being buffered while commanding", async () => {
    const t = tamiyo();
    await t.decideOn([decision("c1")]);
    t.send({ type: "telemetry", report: "late" });
    expect(t.context().telemetry).toEqual(["late"]);
  });
});

describe("outstanding commands", () => {
  const withOutstanding = async (timeoutMs = 1_000, sentAt = 10_000) => {
    const t = tamiyo();
    await t.decideOn([decision("c1", timeoutMs)]);
    t.send({ type: "dispatched", at: sentAt });
    t.emitted.length = 0;
    return t;
  };

  test("a clock at the deadline times nothing out; one past it emits timeout and forgets the command", async () => {
    const t = await withOutstanding(1_000, 10_000);
    t.send({ type: "clock", now: 11_000 });
    expect(t.emitted).toEqual([]);
    expect(Object.keys(t.context().outstanding)).toEqual(["c1"]);
    t.send({ type: "clock", now: 11_001 });
    expect(t.emitted).toEqual([{ type: "timeout", command: { commandId: "c1", layerId: "dense1", sentAt: 10_000, timeoutMs: 1_000 }, waitedMs: 1_001 }]);
    expect(t.context().outstanding).toEqual({});
    expect(t.context().timedOut).toBe(1);
    expect(t.context().now).toBe(11_001);
    t.send({ type: "clock", now: 20_000 });
    expect(t.emitted).toHaveLength(1);
  });

  test("only the commands past their own deadline time out", async () => {
    const t = tamiyo();
    await t.decideOn([decision("short", 100), decision("long", 10_000)]);
    t.send({ type: "dispatched", at: 0 });
    t.send({ type: "clock", now: 500 });
    expect(t.emitted.filter((e) => e.type === "timeout").map((e) => e.type === "timeout" && e.command.commandId)).toEqual(["short"]);
    expect(Object.keys(t.context().outstanding)).toEqual(["long"]);
    expect(expiredAt(t.context(), 10_001).map((c) => c.commandId)).toEqual(["long"]);
  });

  test("a result settles its command: no timeout follows", async () => {
    const t = await withOutstanding(1_000, 0);
    t.send({ type: "result", correlationId: "c1" });
    expect(t.context().outstanding).toEqual({});
    t.send({ type: "clock", now: 5_000 });
    expect(t.emitted).toEqual([]);
    expect(t.context().timedOut).toBe(0);
  });

  test("a result for a command Tamiyo is not waiting for changes nothing", async () => {
    const t = await withOutstanding();
    const before = t.context().outstanding;
    t.send({ type: "result", correlationId: "someone-else" });
    expect(t.context().outstanding).toEqual(before);
  });

  test("time and results are handled in every state, emergency included", async () => {
    const t = await withOutstanding(1_000, 0);
    t.send({ type: "emergency", reason: "operator" });
    t.send({ type: "clock", now: 1_001 });
    expect(t.emitted.map((e) => e.type)).toEqual(["timeout"]);
  });

  test("clock through the pure transition(): the timeout is an emit action", async () => {
    const t = await withOutstanding(1_000, 0);
    const [next, actions] = transition(controllerMachine, t.actor.getSnapshot(), { type: "clock", now: 2_000 });
    expect(next.context.outstanding).toEqual({});
    const events = actions.map((a) => (a as { params?: { event?: ControllerEmitted } }).params?.event).filter(Boolean);
    expect(events).toMatchObject([{ type: "timeout", command: { commandId: "c1" }, waitedMs: 2_000 }]);
  });
});

describe("bus outages", () => {
  test("bus.down from observing degrades; telemetry is still buffered; decide is ignored; bus.up observes again", () => {
    const t = tamiyo();
    t.send({ type: "bus.down" });
    expect(t.state()).toBe("degraded");
    t.send({ type: "telemetry", report: "buffered" });
    t.send({ type: "decide" });
    expect(t.state()).toBe("degraded");
    expect(t.policy.asked).toEqual([]);
    t.send({ type: "bus.up" });
    expect(t.state()).toBe("observing");
    expect(t.context().telemetry).toEqual(["buffered"]);
  });

  test("bus.down while deciding degrades and the policy's late answer is ignored", async () => {
    const t = tamiyo();
    t.send({ type: "telemetry", report: 1 });
    t.send({ type: "decide" });
    t.send({ type: "bus.down" });
    expect(t.state()).toBe("degraded");
    t.policy.answer([decision("c1")]);
    await Promise.resolve();
    await Promise.resolve();
    expect(t.state()).toBe("degraded");
    expect(t.emitted).toEqual([]);
  });

  test("bus.down while commanding drops the pending decisions: nothing becomes outstanding", async () => {
    const t = tamiyo();
    await t.decideOn([decision("c1")]);
    t.send({ type: "bus.down" });
    expect(t.state()).toBe("degraded");
    expect(t.context().pending).toEqual([]);
    t.send({ type: "dispatched", at: 1 });
    expect(t.context().outstanding).toEqual({});
    t.send({ type: "bus.up" });
    expect(t.state()).toBe("observing");
  });

  test("bus.up while observing changes nothing", () => {
    const [s0] = initialTransition(controllerMachine, {});
    const [s1] = transition(controllerMachine, s0, { type: "bus.up" });
    expect(s1.value).toBe("observing");
  });
});

describe("emergency", () => {
  test.each(["observing", "degraded"] as const)("emergency from %s enters emergency with its reason; decide is refused; recover observes", (from) => {
    const t = tamiyo();
    if (from === "degraded") t.send({ type: "bus.down" });
    t.send({ type: "telemetry", report: 1 });
    t.send({ type: "emergency", reason: "loss exploded" });
    expect(t.state()).toBe("emergency");
    expect(t.context().emergencyReason).toBe("loss exploded");
    t.send({ type: "decide" });
    t.send({ type: "bus.up" });
    expect(t.state()).toBe("emergency");
    expect(t.policy.asked).toEqual([]);
    t.send({ type: "telemetry", report: 2 });
    t.send({ type: "recover" });
    expect(t.state()).toBe("observing");
    expect(t.context().emergencyReason).toBeNull();
    expect(t.context().telemetry).toEqual([1, 2]);
  });

  test("emergency while deciding abandons the decision", async () => {
    const t = tamiyo();
    t.send({ type: "telemetry", report: 1 });
    t.send({ type: "decide" });
    t.send({ type: "emergency", reason: "stop" });
    t.policy.answer([decision("c1")]);
    await Promise.resolve();
    await Promise.resolve();
    expect(t.state()).toBe("emergency");
    expect(t.emitted).toEqual([]);
  });

  test("emergency while commanding: a late dispatched is ignored", async () => {
    const t = tamiyo();
    await t.decideOn([decision("c1")]);
    t.send({ type: "emergency", reason: "stop" });
    t.send({ type: "dispatched", at: 5 });
    expect(t.state()).toBe("emergency");
    expect(t.context().outstanding).toEqual({});
  });
});
