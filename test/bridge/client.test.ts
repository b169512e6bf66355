/**
 * The client's side of a command's round trip: a result that does not come resolves as a local
 * timeout, a client that closes answers what it still waits for, stopAll counts each layer once,
 * and a hand-built command without timeout_ms waits its default. On both buses.
 */
import { Clock, Effect, Exit, Scope } from "effect";
import { TestClock } from "effect/testing";
import { BusError, type Bus } from "../../src/bus/bus.ts";
import { beforeEach, describe, expect, test } from "vitest";
import { emergencyStopCommand } from "../../src/protocol/make.ts";
import { makeClient } from "../../src/client/client.ts";
import type { Command as CommandMessage, CommandResult } from "../../src/protocol/messages.ts";
import { lifecycle } from "../runtime/commands.ts";
import { BUS_KINDS, commandFields, openClient, openFixture, publishRaw, resultsOf, run, startBridge, transitionsOf, waitFor, type Fixture } from "./harness.ts";

describe.each(BUS_KINDS)("on %s, the client", (kind) => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await openFixture(kind);
  });

  test("resolves a command nobody answers as a local timeout once the time it was given has passed on its clock, not before", async () => {
    const scope = await run(Scope.make());
    const clock = await run(Scope.provide(scope)(TestClock.make({ warningDelay: "1 hour" })));
    const client = await run(Scope.provide(scope)(makeClient(fx.bus, { namespace: fx.names.namespace, followBlockMs: 50 })).pipe(Effect.provideService(Clock.Clock, clock)));
    let result: CommandResult | undefined;
    const waiting = client.send(lifecycle("nobody", 0, "GERMINATED"), { timeoutMs: 150 }).then((r) => (result = r));
    await waitFor("the command to be sent", () => client.pending() === 1);
    await run(clock.adjust(149));
    expect(result).toBeUndefined();
    await run(clock.adjust(1));
    await waiting;
    expect(result).toMatchObject({ code: "timeout", success: false, layer_id: "nobody", execution_time_ms: 150, details: { local: true } });
    expect(result!.error).toBe("no CommandResult from layer nobody within 150 ms; is a worker hosting it? (esper worker --layer nobody)");
    expect(client.pending()).toBe(0);
    await run(Scope.close(scope, Exit.void));
  });

  test("answers the calls still waiting when it closes, instead of leaving them pending forever", async () => {
    const scope = await run(Scope.make());
    const client = await run(Scope.provide(scope)(makeClient(fx.bus, { namespace: fx.names.namespace, followBlockMs: 50 })));
    let result: CommandResult | undefined;
    const waiting = client.send(lifecycle("nobody", 0, "GERMINATED"), { timeoutMs: 60_000 }).then((r) => (result = r));
    await waitFor("the command to be sent", () => client.pending() === 1);
    await run(Scope.close(scope, Exit.void));
    // Answered by the close itself: settled once the promise callbacks have run, with no timer involved.
    await Promise.resolve();
    await Promise.resolve();
    expect(result).toMatchObject({ code: "timeout", details: { local: true, closed: true } });
    await waiting;
    await expect(client.send(lifecycle("nobody", 0, "GERMINATED"))).rejects.toMatchObject({ _tag: "ClientClosedError" });
  });

  test("stopAll counts each layer once: a layer's duplicate answer does not stand in for a layer that never answered", async () => {
    await startBridge(fx, { layerId: "a" });
    const client = await openClient(fx);
    const stop = emergencyStopCommand({ layer_id: null, seed_id: null, reason: "stop", source: "operator" });
    const answers = client.stopAll(stop, ["a", "b"], { timeoutMs: 800 });
    await waitFor("a's answer", async () => (await resultsOf(fx, "a", stop.message_id)).length === 1);
    // The same stop again (a redelivery): a answers it once more, as a duplicate.
    await publishRaw(fx, fx.names.controlAll, commandFields(fx, stop, { stream: fx.names.controlAll }));
    await waitFor("a's duplicate answer", async () => (await resultsOf(fx, "a", stop.message_id)).length === 2);
    const results = await answers;
    expect(results.map((r) => [r.layer_id, r.code, r.details.local ?? false])).toEqual([
      ["a", "ok", false],
      ["b", "timeout", true],
    ]);
  });

  test("a hand-built command without timeout_ms waits for its answer (the default), rather than timing out at once", async () => {
    await startBridge(fx);
    const client = await openClient(fx);
    const { timeout_ms: _unset, ...command } = lifecycle("a", 0, "GERMINATED");
    const result = await client.send(command as CommandMessage);
    expect(result).toMatchObject({ code: "ok", correlation_id: command.message_id });
    expect(result.details.local).toBeUndefined();
  });
});

test("a follower that could not start is tried again on the next call, not kept broken", async () => {
  const fx = await openFixture("MemoryBus");
  await startBridge(fx);
  let refusals = 1;
  const flaky: Bus = {
    ...fx.bus,
    lastId: (stream) => Effect.suspend(() => (refusals-- > 0 ? Effect.fail(new BusError({ reason: "unavailable", message: "Redis is restarting" })) : fx.bus.lastId(stream))),
  };
  const client = await openClient(fx, {}, flaky);
  await expect(client.send(lifecycle("a", 0, "GERMINATED"))).rejects.toMatchObject({ _tag: "BusError", reason: "unavailable" });
  expect(await client.send(lifecycle("a", 0, "GERMINATED"))).toMatchObject({ code: "ok" });
});

describe.each(BUS_KINDS)("on %s, a client that re-sends", (kind) => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await openFixture(kind);
  });

  /** The fixture's bus, except that the first command published to a control stream is lost on the way. */
  const losingFirstCommand = (bus: Bus): { bus: Bus; publishes: () => number } => {
    let publishes = 0;
    const wrapped = new Proxy(bus, {
      get(target, key) {
        if (key === "publish") {
          return (stream: string, fields: never, maxLen?: number) => {
            if (!stream.includes(".control.")) return target.publish(stream, fields, maxLen);
            publishes++;
            return publishes === 1 ? Effect.succeed("0-1") : target.publish(stream, fields, maxLen);
          };
        }
        // The client sends what one turn of the event loop produced in one publishMany.
        if (key === "publishMany") {
          return (entries: ReadonlyArray<{ stream: string; fields: never }>, maxLen?: number) => {
            const kept = entries.filter((e) => !e.stream.includes(".control.") || ++publishes !== 1);
            return Effect.map(target.publishMany(kept, maxLen), (ids) => entries.map((_, i) => ids[i] ?? "0-1"));
          };
        }
        const value = (target as unknown as Record<PropertyKey, unknown>)[key];
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    return { bus: wrapped, publishes: () => publishes };
  };

  test("gets a command through when its first copy was lost, and it is applied once", async () => {
    await startBridge(fx, { layerId: "a" });
    const lossy = losingFirstCommand(fx.bus);
    const client = await openClient(fx, {}, lossy.bus);
    const command = lifecycle("a", 1, "GERMINATED");
    const result = await client.send(command, { timeoutMs: 5_000, resendAfterMs: 100 });
    expect(result).toMatchObject({ code: "ok", correlation_id: command.message_id });
    expect(lossy.publishes()).toBeGreaterThanOrEqual(2);
    const { transitionsOf } = await import("./harness.ts");
    expect(await transitionsOf(fx, "a", command.message_id)).toHaveLength(1);
  });

  test("without resendAfterMs the lost command is answered as a local timeout, not silently retried", async () => {
    await startBridge(fx, { layerId: "a" });
    const lossy = losingFirstCommand(fx.bus);
    const client = await openClient(fx, {}, lossy.bus);
    const result = await client.send(lifecycle("a", 1, "GERMINATED"), { timeoutMs: 400 });
    expect(result).toMatchObject({ code: "timeout", details: { local: true } });
    expect(lossy.publishes()).toBe(1);
  });
});

describe.each(BUS_KINDS)("on %s, sends published together", (kind) => {
  // The client sends what one turn of the event loop produced in one publishMany; a refused
  // entry must fail only its own send, and a send that was written must not be reported failed.
  test("one refused entry fails only its own send; the others are applied once and answered", async () => {
    const fx = await openFixture(kind);
    await startBridge(fx);
    const client = await openClient(fx);
    // Layer "bad"'s control key holds a hash: every publish to it is refused.
    await run(fx.bus.commit([{ op: "hset", key: fx.names.control("bad"), values: { x: "1" } }]));
    // One send to each layer first, so both followers are in place and the next sends leave in one tick.
    await client.send(lifecycle("bad", 0, "GERMINATED")).catch(() => undefined);
    await client.send(lifecycle("a", 3, "GERMINATED"));
    const good = [lifecycle("a", 0, "GERMINATED"), lifecycle("a", 1, "GERMINATED")];
    const [g0, bad, g1] = await Promise.allSettled([client.send(good[0]!), client.send(lifecycle("bad", 0, "GERMINATED")), client.send(good[1]!)]);
    expect(bad).toMatchObject({ status: "rejected", reason: { _tag: "BusError" } });
    expect([g0, g1].map((r) => (r.status === "fulfilled" ? r.value.code : r.status))).toEqual(["ok", "ok"]);
    for (const c of good) expect(await transitionsOf(fx, "a", c.message_id)).toHaveLength(1);
  });
});
