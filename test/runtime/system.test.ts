/**
 * The in-process system: config validation, the typed handle, mailbox order (emergency stop
 * first, stale commands answered `timeout`), subscriptions and shutdown. Where time matters the
 * system runs on a TestClock: nothing sleeps.
 */
import { Clock, Effect, Exit, Scope } from "effect";
import { TestClock } from "effect/testing";
import { afterEach, describe, expect, test, vi } from "vitest";
import { waitFor } from "xstate";
import { lifecycleCommand } from "../../src/protocol/make.ts";
import { makeSystem, startSystem, SystemConfigError, type EsperSystem, type RunningSystem, type SystemConfig, type SystemEvent } from "../../src/runtime/system.ts";
import type { CommandResult } from "../../src/protocol/messages.ts";
import { batch, emergencyStop, lifecycle } from "./commands.ts";

const running: RunningSystem[] = [];
const start = async (config: Partial<SystemConfig> = {}) => {
  const system = await startSystem({ layers: [{ id: "dense1", seeds: 4 }], inspect: "", ...config });
  running.push(system);
  return system;
};
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

const T0 = 1_700_000_000_000;
const scopes: Scope.Closeable[] = [];
afterEach(async () => {
  await Promise.all(scopes.splice(0).map((scope) => Effect.runPromise(Scope.close(scope, Exit.void))));
});

/** A system whose every clock (bridge, bus, client) is a TestClock set to T0: time moves only when the test says. */
const startOnTestClock = async (): Promise<{ readonly system: EsperSystem; readonly clock: TestClock.TestClock }> => {
  const scope = Scope.makeUnsafe();
  scopes.push(scope);
  const clock = await Effect.runPromise(Scope.provide(scope)(TestClock.make({ warningDelay: "1 hour" })));
  await Effect.runPromise(clock.setTime(T0));
  const system = await Effect.runPromise(
    Scope.provide(scope)(makeSystem({ layers: [{ id: "dense1", seeds: 4 }], inspect: "" })).pipe(Effect.provideService(Clock.Clock, clock)),
  );
  return { system, clock };
};

/** A command sent `ageMs` before now (by the TestClock): it waited that long before the layer read it. */
const sentAgo = (system: EsperSystem, seedId: number, timeoutMs: number, ageMs: number) =>
  system.send(lifecycleCommand({ layer_id: "dense1", seed_id: seedId, target_state: "GERMINATED", timeout_ms: timeoutMs, timestamp: (T0 - ageMs) / 1000 }));

describe("config errors are typed values", () => {
  test.each([
    ["invalid_layer_id", { layers: [{ id: "dense 1", seeds: 4 }] }],
    ["invalid_layer_id", { layers: [{ id: "x".repeat(65), seeds: 4 }] }],
    ["duplicate_layer", { layers: [{ id: "dense1", seeds: 4 }, { id: "dense1", seeds: 2 }] }],
    ["invalid_seed_count", { layers: [{ id: "dense1", seeds: 0 }] }],
    ["invalid_seed_count", { layers: [{ id: "dense1", seeds: 2.5 }] }],
    ["no_layers", { layers: [] }],
  ] as const)("rejects with SystemConfigError reason %s for %j", async (reason, config) => {
    const error = await startSystem({ ...config, inspect: "" }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SystemConfigError);
    expect(error).toMatchObject({ _tag: "SystemConfigError", reason });
    expect((error as SystemConfigError).message.length).toBeGreaterThan(0);
  });

  test("accepts a layer id of 64 letters, digits, _ and -", async () => {
    const system = await start({ layers: [{ id: `${"a".repeat(62)}_-`, seeds: 1 }] });
    expect(system.layerIds).toEqual([`${"a".repeat(62)}_-`]);
  });
});

describe("the handle", () => {
  test("transition() moves a seed and resolves with its result", async () => {
    const system = await start();
    const result = await system.transition("dense1", 2, "GERMINATED", { reason: "plateau" });
    expect(result).toMatchObject({ code: "ok", success: true, layer_id: "dense1", seed_id: 2, source: "esper" });
    expect(system.layer("dense1").seed(2).state).toBe("GERMINATED");
  });

  test("a command for an unknown layer resolves with unknown_layer, it never rejects", async () => {
    const system = await start();
    await expect(system.transition("dense9", 0, "GERMINATED")).resolves.toMatchObject({ success: false, code: "unknown_layer", seed_id: 0 });
    const b = batch([lifecycle("dense9", 0, "GERMINATED")]);
    await expect(system.send(b)).resolves.toMatchObject({ code: "unknown_layer", correlation_id: b.message_id });
    await expect(system.resume("nope")).resolves.toMatchObject({ code: "unknown_layer" });
    const [stop] = await system.emergencyStop("dense9", "x");
    expect(stop).toMatchObject({ code: "unknown_layer" });
  });

  test("layer() throws for an unknown layer id", async () => {
    const system = await start();
    expect(() => system.layer("dense9")).toThrow(RangeError);
  });

  test("metrics and ticks reach the validators through the handle", async () => {
    const system = await start();
    for (const target of ["GERMINATED", "TRAINING"] as const) await system.transition("dense1", 0, target);
    await system.tick("dense1", 100);
    expect(await system.transition("dense1", 0, "GRAFTING")).toMatchObject({ code: "guard_failed" });
    await system.reportMetrics("dense1", { 0: { reconstruction_loss: 0.002 } });
    expect(await system.transition("dense1", 0, "GRAFTING")).toMatchObject({ code: "ok" });
  });

  test("metrics given to transition() count for the validators", async () => {
    const system = await start({ layers: [{ id: "dense1", seeds: 1, guards: { minEpochs: { TRAINING: 0 } } }] });
    await system.transition("dense1", 0, "GERMINATED");
    await system.transition("dense1", 0, "TRAINING");
    expect(await system.transition("dense1", 0, "GRAFTING", { metrics: { reconstruction_loss: 0.001 } })).toMatchObject({ code: "ok" });
  });

  test("an emergency stop for every layer stops each one and answers per layer", async () => {
    const system = await start({ layers: [{ id: "a", seeds: 2 }, { id: "b", seeds: 2 }] });
    await system.transition("a", 0, "GERMINATED");
    const results = await system.emergencyStop(null, "all hands");
    expect(results.map((r) => [r.layer_id, r.code])).toEqual([
      ["a", "ok"],
      ["b", "ok"],
    ]);
    expect(system.layer("a").seed(0).state).toBe("CANCELLED");
    expect(system.layer("a").isStopped && system.layer("b").isStopped).toBe(true);
    expect(await system.transition("b", 1, "GERMINATED")).toMatchObject({ code: "emergency_stopped" });
  });

  test("an EmergencyStopCommand without layer_id sent through send() reaches every layer in one answer", async () => {
    const system = await start({ layers: [{ id: "a", seeds: 1 }, { id: "b", seeds: 1 }] });
    const result = await system.send(emergencyStop(null));
    expect(result).toMatchObject({ code: "ok", success: true });
    expect(result.details).toMatchObject({ layers: [{ layer_id: "a", code: "ok" }, { layer_id: "b", code: "ok" }] });
    expect(system.layer("a").isStopped && system.layer("b").isStopped).toBe(true);
  });
});

describe("mailbox order", () => {
  test("an emergency stop posted after queued commands (same tick) is applied before them", async () => {
    const system = await start();
    const order: string[] = [];
    system.subscribe((e) => {
      if (e.type === "result") order.push(e.result.code === "ok" && e.result.details.stopped === true ? "stop" : `${e.result.seed_id}:${e.result.code}`);
      if (e.type === "transition") order.push(`move ${e.event.seed_id}`);
    });
    const first = system.transition("dense1", 0, "GERMINATED");
    const second = system.transition("dense1", 1, "GERMINATED");
    const stopped = system.emergencyStop("dense1", "posted last");
    const [r0, r1, [stop]] = await Promise.all([first, second, stopped]);
    expect(stop!.code).toBe("ok");
    expect(r0.code).toBe("emergency_stopped");
    expect(r1.code).toBe("emergency_stopped");
    expect(order).toEqual(["stop", "0:emergency_stopped", "1:emergency_stopped"]);
    expect(system.layer("dense1").seed(0).state).toBe("DORMANT");
  });

  test("the same commands without the stop are applied in the order they were posted", async () => {
    const system = await start();
    const seen: string[] = [];
    system.subscribe((e) => e.type === "transition" && seen.push(`${e.event.seed_id}:${e.event.to_state}`));
    await Promise.all([
      system.transition("dense1", 0, "GERMINATED"),
      system.transition("dense1", 0, "TRAINING"),
      system.transition("dense1", 3, "GERMINATED"),
    ]);
    expect(seen).toEqual(["0:GERMINATED", "0:TRAINING", "3:GERMINATED"]);
  });

  test("a command whose timeout_ms elapsed while queued is answered timeout and not applied", async () => {
    const { system } = await startOnTestClock();
    const transitions: SystemEvent[] = [];
    system.subscribe((e) => e.type === "transition" && transitions.push(e));
    const result = await sentAgo(system, 0, 100, 101);
    expect(result).toMatchObject({ success: false, code: "timeout", seed_id: 0, details: { waited_ms: 101 } });
    expect(result.error).toContain("longer than its timeout_ms 100; not applied");
    expect(transitions).toEqual([]);
    expect(system.layer("dense1").seed(0).state).toBe("DORMANT");
    expect(system.layer("dense1").table.state[0]).toBe(0);
  });

  test("a command that waited exactly its timeout_ms is still applied", async () => {
    const { system } = await startOnTestClock();
    expect(await sentAgo(system, 0, 100, 100)).toMatchObject({ code: "ok" });
  });

  test("only the commands that outwaited their own timeout are dropped", async () => {
    const { system } = await startOnTestClock();
    const [short, long] = await Promise.all([sentAgo(system, 0, 10, 50), sentAgo(system, 1, 5_000, 50)]);
    expect(short.code).toBe("timeout");
    expect(long.code).toBe("ok");
  });

});

describe("the live actors, for XState's own tools", () => {
  test("waitFor on a seed's actor resolves when the seed gets there; the layer's actor says when it stops", async () => {
    const system = await start();
    const seed = system.layer("dense1").seedActor(3);
    const training = waitFor(seed, (s) => s.value === "TRAINING", { timeout: 5_000 });
    await system.transition("dense1", 3, "GERMINATED");
    await system.transition("dense1", 3, "TRAINING");
    expect((await training).value).toBe("TRAINING");
    const states: string[] = [];
    const subscription = system.layer("dense1").actor.subscribe((s) => states.push(String(s.value)));
    await system.emergencyStop("dense1", "watched");
    subscription.unsubscribe();
    expect(states).toContain("stopped");
    expect(() => system.layer("dense1").seedActor(99)).toThrow(/layer dense1 has no seed 99/);
  });
});

describe("subscribe", () => {
  test("a subscriber sees transitions and results until it unsubscribes", async () => {
    const system = await start();
    const events: SystemEvent[] = [];
    const unsubscribe = system.subscribe((e) => events.push(e));
    const result = await system.transition("dense1", 1, "GERMINATED");
    expect(events.map((e) => e.type)).toEqual(["transition", "result"]);
    expect(events[0]).toMatchObject({ type: "transition", event: { seed_id: 1, to_state: "GERMINATED", correlation_id: result.correlation_id } });
    expect(events[1]).toEqual({ type: "result", result });
    unsubscribe();
    await system.transition("dense1", 2, "GERMINATED");
    expect(events).toHaveLength(2);
  });

  test("every subscriber hears every event", async () => {
    const system = await start();
    const first: string[] = [];
    const second: string[] = [];
    system.subscribe((e) => first.push(e.type));
    system.subscribe((e) => second.push(e.type));
    await system.transition("dense1", 0, "GERMINATED");
    expect(first).toEqual(["transition", "result"]);
    expect(second).toEqual(["transition", "result"]);
  });

  test("a refused command is published as a result without a transition", async () => {
    const system = await start();
    const events: SystemEvent[] = [];
    system.subscribe((e) => events.push(e));
    await system.transition("dense1", 0, "FOSSILIZED");
    expect(events).toMatchObject([{ type: "result", result: { code: "invalid_transition" } }]);
  });

  test("a subscriber that throws breaks neither the command nor the other subscribers", async () => {
    const system = await start();
    const heard: string[] = [];
    system.subscribe(() => {
      throw new Error("bad listener");
    });
    system.subscribe((e) => heard.push(e.type));
    expect(await system.transition("dense1", 0, "GERMINATED")).toMatchObject({ code: "ok" });
    expect(heard).toEqual(["transition", "result"]);
  });
});

describe("close()", () => {
  test("stops the actors: a command sent afterwards moves nothing and nobody hears of it", async () => {
    const system = await startSystem({ layers: [{ id: "dense1", seeds: 2 }], inspect: "" });
    const events: SystemEvent[] = [];
    system.subscribe((e) => events.push(e));
    await system.transition("dense1", 0, "GERMINATED");
    const host = system.layer("dense1");
    await system.close();
    events.length = 0;
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    let late: CommandResult | undefined;
    try {
      late = await system.transition("dense1", 1, "GERMINATED");
    } finally {
      warn.mockRestore();
    }
    expect(late!.success).toBe(false);
    expect(host.seed(1).state).toBe("DORMANT");
    // Past the system's own refusal, the layer's actors themselves are stopped.
    const warnAgain = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      host.apply(lifecycle("dense1", 1, "GERMINATED"));
    } finally {
      warnAgain.mockRestore();
    }
    expect(host.seed(1).state).toBe("DORMANT");
    expect(host.table.state[1]).toBe(0);
    expect(events).toEqual([]);
  });

  test("works as an async disposable", async () => {
    let host: ReturnType<RunningSystem["layer"]> | undefined;
    {
      await using system = await startSystem({ layers: [{ id: "dense1", seeds: 1 }], inspect: "" });
      host = system.layer("dense1");
      await system.transition("dense1", 0, "GERMINATED");
    }
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      host.apply(lifecycle("dense1", 0, "TRAINING"));
    } finally {
      warn.mockRestore();
    }
    expect(host.seed(0).state).toBe("GERMINATED");
  });
});
