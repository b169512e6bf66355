/**
 * Delivery through the bridge (docs/protocol.md "Consumer groups and delivery"): at least once on the
 * wire, exactly once in effect; stream order within a layer; emergency stops before what was
 * queued with them; what a dead consumer left pending, taken over by its successor; a batch whose
 * commit keeps failing, dead-lettered; a graceful close that commits the batch in hand. Each
 * behaviour runs on the embedded bus and on a real Redis.
 */
import { Deferred, Effect, Exit, Scope } from "effect";
import { beforeEach, describe, expect, test } from "vitest";
import { BusError, type Bus } from "../../src/bus/bus.ts";
import { GROUPS } from "../../src/protocol/streams.ts";
import { Result } from "effect";
import { readSeed } from "../../src/bridge/store.ts";
import { emergencyStop, lifecycle } from "../runtime/commands.ts";
import {
  BUS_KINDS,
  deadLettersOf,
  openClient,
  openFixture,
  drained,
  pendingOf,
  publishCommand,
  publishRaw,
  resultsOf,
  run,
  settled,
  startBridge,
  transitionsOf,
  waitFor,
  watchResults,
  type Fixture,
} from "./harness.ts";

/** Reads entries as consumer `consumer` and never acks them: a worker that died mid-batch. */
const readAndDie = async (fx: Fixture, consumer: string): Promise<readonly string[]> => {
  const scope = await run(Scope.make());
  const reader = await run(Scope.provide(scope)(fx.bus.reader({ stream: fx.names.control("a"), group: GROUPS.kasmina, consumer, blockMs: 50 })));
  const entries = await run(reader.read);
  await run(Scope.close(scope, Exit.void));
  return entries.map((e) => e.id);
};

/** The state a seed has in the layer's state hash (undefined: never stored). */
const storedState = async (fx: Fixture, seedId: number): Promise<string | undefined> => {
  const stored = (await run(fx.bus.hgetall(fx.names.state("a"))))[String(seedId)];
  if (stored === undefined) return undefined;
  const seed = readSeed(stored, seedId);
  return Result.isSuccess(seed) ? seed.success.state : `not a seed: ${seed.failure}`;
};

describe.each(BUS_KINDS)("on %s, a command delivered again changes nothing a second time", (kind) => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await openFixture(kind);
  });

  test("the same entry published again later: its result comes again with details.duplicate, one transition in all", async () => {
    const worker = await startBridge(fx);
    const client = await openClient(fx);
    const results = await watchResults(client, "a");
    const command = lifecycle("a", 0, "GERMINATED");
    const first = await client.send(command);
    expect(first).toMatchObject({ code: "ok", correlation_id: command.message_id });
    expect(first.details.duplicate).toBeUndefined();
    await publishCommand(fx, command);
    await waitFor("the second result", () => results.seen.filter((r) => r.correlation_id === command.message_id).length === 2);
    const second = results.seen.filter((r) => r.correlation_id === command.message_id)[1]!;
    expect(second).toMatchObject({ code: "ok", success: true, seed_id: 0, details: { from_state: "DORMANT", to_state: "GERMINATED", duplicate: true } });
    // A message of its own: readers that drop repeated message ids must still see it.
    expect(second.message_id).not.toBe(first.message_id);
    expect(await transitionsOf(fx, "a", command.message_id)).toHaveLength(1);
    expect(worker.host.seed(0).state).toBe("GERMINATED");
    expect(worker.bridge.stats()).toMatchObject({ entries: 2, applied: 1, duplicates: 1 });
  });

  test("twice in one batch: the second copy is a duplicate of the first, not a second transition", async () => {
    const command = lifecycle("a", 0, "GERMINATED");
    await publishCommand(fx, command);
    await publishCommand(fx, command);
    const worker = await startBridge(fx);
    await settled(worker, 2);
    const results = await resultsOf(fx, "a", command.message_id);
    expect(results.map((r) => [r.code, r.details.duplicate ?? false])).toEqual([
      ["ok", false],
      ["ok", true],
    ]);
    expect(await transitionsOf(fx, "a", command.message_id)).toHaveLength(1);
    expect(worker.bridge.stats()).toMatchObject({ applied: 1, duplicates: 1 });
  });

  // The duplicate check rides on the commit: a batch that holds a copy of an applied command is
  // applied, refused by the commit, rolled back and settled again knowing what is stored.
  test("a copy read in one batch with new commands: the commit refuses, the batch is settled again, each new command applies once", async () => {
    const worker = await startBridge(fx);
    const client = await openClient(fx);
    const applied = lifecycle("a", 0, "GERMINATED");
    expect((await client.send(applied)).code).toBe("ok");
    await worker.close();
    const fresh = [lifecycle("a", 1, "GERMINATED"), lifecycle("a", 0, "TRAINING", { force: true }), lifecycle("a", 2, "GERMINATED")];
    await publishCommand(fx, fresh[0]!);
    await publishCommand(fx, applied);
    for (const c of fresh.slice(1)) await publishCommand(fx, c);
    const again = await startBridge(fx);
    await settled(again, 4);
    const results = await resultsOf(fx, "a");
    expect(results.map((r) => [r.correlation_id, r.code, r.details.duplicate ?? false])).toEqual([
      [applied.message_id, "ok", false],
      [fresh[0]!.message_id, "ok", false],
      [applied.message_id, "ok", true],
      [fresh[1]!.message_id, "ok", false],
      [fresh[2]!.message_id, "ok", false],
    ]);
    for (const c of [applied, ...fresh]) expect(await transitionsOf(fx, "a", c.message_id)).toHaveLength(1);
    expect(again.host.seed(0).state).toBe("TRAINING");
    expect(await storedState(fx, 0)).toBe("TRAINING");
    expect(again.bridge.stats()).toMatchObject({ entries: 4, applied: 3, duplicates: 1 });
  });

  test("answers are kept for the last dedupeWindow to 2 x dedupeWindow commands: a copy within is a duplicate, one older is judged again", async () => {
    const worker = await startBridge(fx, { numSeeds: 8, options: { dedupeWindow: 2 } });
    const client = await openClient(fx);
    const results = await watchResults(client, "a");
    // Five answers with room for 2 to 4: the generations hold c2, c3 then c4 when the copies come.
    const commands = [0, 1, 2, 3, 4].map((seed) => lifecycle("a", seed, "GERMINATED"));
    for (const c of commands) expect((await client.send(c)).code).toBe("ok");
    const stored = async () =>
      Object.keys(await run(fx.bus.hgetall(fx.names.results("a")))).length + Object.keys(await run(fx.bus.hgetall(fx.names.resultsOld("a")))).length;
    expect(await stored()).toBe(3);
    await publishCommand(fx, commands[3]!);
    await publishCommand(fx, commands[0]!);
    await waitFor("both copies answered", () => results.seen.length === 7);
    expect(results.seen.slice(5).map((r) => [r.correlation_id, r.code, r.details.duplicate ?? false])).toEqual([
      [commands[3]!.message_id, "ok", true],
      // Out of the window: judged again, and seed 0 is no longer DORMANT.
      [commands[0]!.message_id, "invalid_transition", false],
    ]);
    expect(worker.host.seed(0).state).toBe("GERMINATED");
    expect(await transitionsOf(fx, "a", commands[0]!.message_id)).toHaveLength(1);
  });

  test("a refused command redelivered is answered the same again, still without effect", async () => {
    const worker = await startBridge(fx);
    const client = await openClient(fx);
    const results = await watchResults(client, "a");
    const command = lifecycle("a", 0, "TRAINING");
    expect((await client.send(command)).code).toBe("invalid_transition");
    expect((await client.send(lifecycle("a", 0, "GERMINATED"))).code).toBe("ok");
    // Judged again now, DORMANT is gone and TRAINING would be ok; a duplicate repeats the first answer.
    await publishCommand(fx, command);
    await waitFor("the repeated result", () => results.seen.filter((r) => r.correlation_id === command.message_id).length === 2);
    expect(results.seen.filter((r) => r.correlation_id === command.message_id)[1]).toMatchObject({ code: "invalid_transition", details: { duplicate: true } });
    expect(worker.host.seed(0).state).toBe("GERMINATED");
  });

  test("a worker that read an entry and died before acking: its successor (same consumer name) drains and applies it once", async () => {
    const command = lifecycle("a", 0, "GERMINATED");
    const id = await publishCommand(fx, command);
    expect(await readAndDie(fx, "worker-1")).toEqual([id]);
    expect(await pendingOf(fx, fx.names.control("a"))).toMatchObject([{ id, consumer: "worker-1", deliveries: 1 }]);
    const worker = await startBridge(fx);
    await settled(worker, 1);
    expect(await resultsOf(fx, "a", command.message_id)).toMatchObject([{ code: "ok" }]);
    expect(await transitionsOf(fx, "a", command.message_id)).toHaveLength(1);
    expect(await pendingOf(fx, fx.names.control("a"))).toEqual([]);
    expect(await storedState(fx, 0)).toBe("GERMINATED");
  });

  test("a worker that applied a batch but could not commit it: the next one applies it once, from the persisted state", async () => {
    let away = false;
    const unreachable: Bus = { ...fx.bus, commit: (ops) => (away ? Effect.fail(new BusError({ reason: "unavailable", message: "Redis went away" })) : fx.bus.commit(ops)) };
    const doomed = await startBridge(fx, { bus: unreachable });
    away = true;
    const command = lifecycle("a", 0, "GERMINATED");
    await publishCommand(fx, command);
    await waitFor("the doomed worker to apply the command in memory", () => doomed.host.seed(0).state === "GERMINATED");
    await doomed.close();
    expect(await resultsOf(fx, "a")).toEqual([]);
    expect(await storedState(fx, 0)).toBeUndefined();
    expect(await pendingOf(fx, fx.names.control("a"))).toMatchObject([{ consumer: "worker-1" }]);
    // Closing while the commit waited for Redis undid the batch in memory: nothing of it is left but the pending entry.
    expect(doomed.host.seed(0).state).toBe("DORMANT");
    const worker = await startBridge(fx);
    await settled(worker, 1);
    expect(await resultsOf(fx, "a", command.message_id)).toMatchObject([{ code: "ok", details: { from_state: "DORMANT", to_state: "GERMINATED" } }]);
    expect(await transitionsOf(fx, "a", command.message_id)).toHaveLength(1);
    expect(await pendingOf(fx, fx.names.control("a"))).toEqual([]);
  });
});

describe.each(BUS_KINDS)("on %s, order and priority", (kind) => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await openFixture(kind);
  });

  test("commands to one layer are applied in stream order, across many small batches", async () => {
    // Each seed walks GERMINATED -> TRAINING -> CANCELLED (forced: the graph still holds, the dwell
    // times do not); any reordering is refused as invalid_transition.
    const commands = ["GERMINATED", "TRAINING", "CANCELLED"].flatMap((target) => [0, 1, 2, 3].map((seed) => lifecycle("a", seed, target, { force: true })));
    for (const c of commands.slice(0, 5)) await publishCommand(fx, c);
    const worker = await startBridge(fx, { options: { readCount: 3 } });
    for (const c of commands.slice(5)) await publishCommand(fx, c);
    await settled(worker, commands.length);
    const results = await resultsOf(fx, "a");
    expect(results.map((r) => r.code)).toEqual(commands.map(() => "ok"));
    expect(results.map((r) => r.correlation_id)).toEqual(commands.map((c) => c.message_id));
    expect((await transitionsOf(fx, "a")).map((t) => t.correlation_id)).toEqual(commands.map((c) => c.message_id));
    expect(worker.host.seeds().map((s) => s.state)).toEqual(["CANCELLED", "CANCELLED", "CANCELLED", "CANCELLED"]);
    expect(worker.bridge.stats().commits).toBeGreaterThanOrEqual(4);
  });

  test("an emergency stop queued behind growth commands is applied before them, and they are refused emergency_stopped", async () => {
    const growth = [0, 1, 2, 3].map((seed) => lifecycle("a", seed, "GERMINATED"));
    for (const c of growth) await publishCommand(fx, c);
    const stop = emergencyStop("a", null, "gradient explosion");
    await publishCommand(fx, stop);
    const worker = await startBridge(fx);
    await settled(worker, growth.length + 1);
    const results = await resultsOf(fx, "a");
    expect(results[0]).toMatchObject({ correlation_id: stop.message_id, code: "ok", details: { stopped: true, seeds: [] } });
    expect(results.slice(1).map((r) => [r.correlation_id, r.code])).toEqual(growth.map((c) => [c.message_id, "emergency_stopped"]));
    expect(await transitionsOf(fx, "a")).toEqual([]);
    expect(worker.host.seeds().map((s) => s.state)).toEqual(["DORMANT", "DORMANT", "DORMANT", "DORMANT"]);
    expect(worker.host.isStopped).toBe(true);
  });
});

describe.each(BUS_KINDS)("on %s, what a dead consumer left, and a batch that cannot be committed", (kind) => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await openFixture(kind);
  });

  test("an entry a dead consumer of another name left pending is taken over at once and applied", async () => {
    const command = lifecycle("a", 0, "GERMINATED");
    const id = await publishCommand(fx, command);
    expect(await readAndDie(fx, "dead-worker")).toEqual([id]);
    const worker = await startBridge(fx);
    await settled(worker, 1);
    expect(await resultsOf(fx, "a", command.message_id)).toMatchObject([{ code: "ok" }]);
    expect(await pendingOf(fx, fx.names.control("a"))).toEqual([]);
    expect(await storedState(fx, 0)).toBe("GERMINATED");
  });

  test("a batch whose commit keeps failing (not an outage) goes to the dead-letter stream, and the layer is left as if it never came", async () => {
    // The event stream's key holds a hash: every commit of this layer fails (WRONGTYPE) until it is removed.
    const events = fx.names.events("a");
    await run(fx.bus.commit([{ op: "hset", key: events, values: { oops: "a hash where a stream belongs" } }]));
    const worker = await startBridge(fx, { options: { maxCommitAttempts: 2 } });
    const command = lifecycle("a", 0, "GERMINATED");
    const id = await publishCommand(fx, command);
    const [letter] = await waitFor("the dead letter", async () => {
      const letters = await deadLettersOf(fx, fx.names.dlq("a"));
      return letters.length > 0 ? letters : undefined;
    });
    expect(letter).toMatchObject({ stream: fx.names.control("a"), id, code: "internal", deliveries: 1 });
    expect(letter!.error).toMatch(/could not commit this entry: .*WRONGTYPE/);
    // The event stream is what is broken, so the letter went without its answer: the letter is what counts.
    expect(await run(fx.bus.range(fx.names.dlq("a")))).toHaveLength(1);
    expect(await pendingOf(fx, fx.names.control("a"))).toEqual([]);
    // The failed commits are undone in memory too: the layer judges what comes next from what was stored.
    expect(worker.host.seed(0).state).toBe("DORMANT");
    expect(await storedState(fx, 0)).toBeUndefined();
    await run(fx.bus.del([events]));
    const client = await openClient(fx);
    expect(await client.send(lifecycle("a", 0, "GERMINATED"))).toMatchObject({ code: "ok", details: { from_state: "DORMANT" } });
    await drained(fx, fx.names.control("a"));
    expect(await deadLettersOf(fx, fx.names.dlq("a"))).toHaveLength(1);
  });

  test("a batch given up on for a reason other than its event stream is dead-lettered with an answer each: its senders hear why", async () => {
    const worker = await startBridge(fx, { options: { maxCommitAttempts: 2 } });
    // The dedupe table is what is broken (a stream where a hash belongs): answers can still be written, but not with the batch's.
    await publishRaw(fx, fx.names.results("a"), { x: "a stream where a hash belongs" });
    const client = await openClient(fx);
    const command = lifecycle("a", 0, "GERMINATED");
    const result = await client.send(command);
    expect(result).toMatchObject({ correlation_id: command.message_id, code: "internal", success: false, seed_id: 0 });
    expect(result.error).toMatch(/could not commit this entry: .*WRONGTYPE.*not applied and is in the dead-letter stream/);
    expect(await deadLettersOf(fx, fx.names.dlq("a"))).toMatchObject([{ code: "internal", deliveries: 1 }]);
    expect(worker.host.seed(0).state).toBe("DORMANT");
  });

  test("a redelivery whose stored answer cannot be read is answered as a duplicate saying so, not applied again (nor retried for ever)", async () => {
    await (await startBridge(fx)).close();
    const command = lifecycle("a", 0, "GERMINATED");
    await publishCommand(fx, command);
    await readAndDie(fx, "dead-worker");
    await run(fx.bus.commit([{ op: "hset", key: fx.names.results("a"), values: { [command.message_id]: new Uint8Array([0xc1, 0xc1]) } }]));
    const worker = await startBridge(fx);
    await settled(worker, 1);
    expect(await resultsOf(fx, "a", command.message_id)).toMatchObject([
      { code: "internal", details: { duplicate: true }, error: expect.stringMatching(/answered before, but the stored answer cannot be read/) },
    ]);
    expect(worker.host.seed(0).state).toBe("DORMANT");
    expect(await pendingOf(fx, fx.names.control("a"))).toEqual([]);
  });

  test("an entry dead-lettered after maxDeliveries is answered: its sender hears why", async () => {
    const command = lifecycle("a", 0, "GERMINATED");
    await publishCommand(fx, command);
    for (let i = 0; i < 3; i++) await readAndDie(fx, "worker-1");
    const worker = await startBridge(fx, { options: { maxDeliveries: 3 } });
    await settled(worker, 1);
    expect(await resultsOf(fx, "a", command.message_id)).toMatchObject([{ code: "internal", success: false, details: { deliveries: 4 }, error: expect.stringMatching(/exceeded max deliveries \(3\)/) }]);
  });

  test("an entry delivered more than maxDeliveries times without being settled is dead-lettered when it comes again", async () => {
    const command = lifecycle("a", 0, "GERMINATED");
    const id = await publishCommand(fx, command);
    for (let i = 0; i < 3; i++) await readAndDie(fx, "worker-1");
    expect(await pendingOf(fx, fx.names.control("a"))).toMatchObject([{ id, deliveries: 3 }]);
    const worker = await startBridge(fx, { options: { maxDeliveries: 3 } });
    await settled(worker, 1);
    expect(await deadLettersOf(fx, fx.names.dlq("a"))).toMatchObject([{ id, code: "internal", deliveries: 4 }]);
    expect(worker.host.seed(0).state).toBe("DORMANT");
  });
});

describe.each(BUS_KINDS)("on %s, a graceful close", (kind) => {
  test("releases whoever waits for an entry to be settled: a closed bridge keeps nobody waiting", async () => {
    const fx = await openFixture(kind);
    const worker = await startBridge(fx);
    const waiting = run(worker.bridge.settled(fx.names.telemetry("a"), "99999999999999-0"));
    let released = false;
    void waiting.then(() => (released = true));
    await worker.close();
    await waiting;
    expect(released).toBe(true);
    // Asked after it stopped: answered at once.
    await run(worker.bridge.settled(fx.names.control("a"), "99999999999999-0"));
  });

  test("settled() on a control stream succeeds once the bridge has committed that entry", async () => {
    const fx = await openFixture(kind);
    const worker = await startBridge(fx);
    const command = lifecycle("a", 0, "GERMINATED");
    const id = await publishCommand(fx, command);
    await run(worker.bridge.settled(fx.names.control("a"), id));
    // Committed by then: its answer is on the event stream and its snapshot stored.
    expect(await resultsOf(fx, "a", command.message_id)).toMatchObject([{ code: "ok" }]);
    expect(await storedState(fx, 0)).toBe("GERMINATED");
  });

  test("a bridge that stopped because its layer's data was lost releases its waiters too", async () => {
    const fx = await openFixture(kind);
    const worker = await startBridge(fx);
    const waiting = run(worker.bridge.settled(fx.names.telemetry("a"), "99999999999999-0"));
    await run(fx.bus.del([fx.names.layerKey("meta", "a")]));
    await publishCommand(fx, lifecycle("a", 0, "GERMINATED"));
    const lost = await run(Effect.flip(worker.bridge.failed));
    expect(lost.message).toMatch(/generation marker/);
    await waiting;
  });

  test("while a batch is being committed, finishes and commits it: nothing applied is left pending", async () => {
    const fx = await openFixture(kind);
    const started = await run(Deferred.make<void>());
    // Only a batch's commit (it acks) is slow; the layer's start is not.
    const slow: Bus = {
      ...fx.bus,
      commit: (ops) =>
        ops.some((op) => op.op === "ack") ? Deferred.succeed(started, undefined).pipe(Effect.andThen(Effect.sleep(300)), Effect.andThen(fx.bus.commit(ops))) : fx.bus.commit(ops),
    };
    const commands = [0, 1].map((seed) => lifecycle("a", seed, "GERMINATED"));
    for (const c of commands) await publishCommand(fx, c);
    const worker = await startBridge(fx, { bus: slow });
    await run(Deferred.await(started));
    expect(worker.bridge.stats().commits).toBe(0);
    await worker.close();
    expect(worker.bridge.stats()).toMatchObject({ commits: 1, entries: 2, applied: 2 });
    expect(await pendingOf(fx, fx.names.control("a"))).toEqual([]);
    expect((await resultsOf(fx, "a")).map((r) => [r.correlation_id, r.code])).toEqual(commands.map((c) => [c.message_id, "ok"]));
    expect(await transitionsOf(fx, "a")).toHaveLength(2);
    expect([await storedState(fx, 0), await storedState(fx, 1)]).toEqual(["GERMINATED", "GERMINATED"]);
    const next = await startBridge(fx);
    expect(next.host.seeds().map((s) => s.state)).toEqual(["GERMINATED", "GERMINATED", "DORMANT", "DORMANT"]);
    await drained(fx, fx.names.control("a"));
    expect(next.bridge.stats().entries).toBe(0);
  });
});

describe.each(BUS_KINDS)("on %s, a backlog of commands longer than the streams' MAXLEN", (kind) => {
  // MAXLEN would trim commands nobody has read yet: control streams are published without it, and
  // the bridge trims what its group has read and acknowledged instead (Bus.trimDelivered).
  test("is applied whole, and the control stream is trimmed once it is done with", async () => {
    const fx = await openFixture(kind, 4);
    const client = await openClient(fx);
    // Sent while no worker runs: twelve commands on a bus whose default MAXLEN is 4.
    const answers = Array.from({ length: 12 }, (_, seed) => client.send(lifecycle("a", seed, "GERMINATED"), { timeoutMs: 10_000 }));
    await waitFor("all twelve in the control stream", async () => (await run(fx.bus.length(fx.names.control("a")))) === 12);
    const worker = await startBridge(fx, { numSeeds: 12, options: { houseKeepingMs: 20 } });
    expect((await Promise.all(answers)).map((r) => r.code)).toEqual(Array(12).fill("ok"));
    expect(worker.host.seeds().every((s) => s.state === "GERMINATED")).toBe(true);
    await waitFor("the control stream trimmed", async () => (await run(fx.bus.length(fx.names.control("a")))) === 0);
  });
});
