import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Effect, Exit, Schedule, Scope } from "effect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BusError, Entry, EntryFields, Reader } from "../../src/bus/bus.ts";
import { makeRedisBus, type RedisBus, type RedisBusStats } from "../../src/bus/redis-bus.ts";
import type { RedisBusOptions } from "../../src/bus/redis-options.ts";
import { startRedisServer, type RedisServer } from "../support/redis-server.ts";

/** Each test runs its own redis-server, so it can stop, kill and restart it. */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const entry = (n: number): EntryFields => ({ data: new Uint8Array([n, 0, 255]), type: "LifecycleTransitionCommand", seq: String(n) });
const seqs = (entries: readonly Entry[]) => entries.map((e) => e.fields.seq);

const run = <A>(effect: Effect.Effect<A, BusError, Scope.Scope>): Promise<A> => Effect.runPromise(Effect.scoped(effect));
const failure = async (effect: Effect.Effect<unknown, BusError>): Promise<BusError> => {
  const exit = await Effect.runPromiseExit(effect);
  if (Exit.isSuccess(exit)) throw new Error("expected a BusError, got success");
  const fail = exit.cause.reasons.find((r) => r._tag === "Fail");
  if (fail === undefined || fail._tag !== "Fail") throw new Error(`expected a BusError, got ${String(exit.cause)}`);
  return fail.error;
};

const waitFor = async (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
};

/** A consumer loop's view of an outage: reads that fail with `unavailable` are retried until entries come. */
const readThroughOutage = async (reader: Reader, timeoutMs = 10_000): Promise<{ entries: readonly Entry[]; failures: number }> => {
  const deadline = Date.now() + timeoutMs;
  let failures = 0;
  while (Date.now() < deadline) {
    const exit = await Effect.runPromiseExit(reader.read);
    if (Exit.isSuccess(exit)) {
      if (exit.value.length > 0) return { entries: exit.value, failures };
      continue;
    }
    const fail = exit.cause.reasons.find((r) => r._tag === "Fail");
    if (fail?._tag !== "Fail" || fail.error.reason !== "unavailable") throw new Error(`read failed: ${String(exit.cause)}`);
    failures++;
    await sleep(50);
  }
  throw new Error("reader did not resume");
};

const FAST: RedisBusOptions = {
  outboxLimit: 5,
  droppableLimit: 3,
  reconnect: Schedule.spaced("50 millis"),
  retry: Schedule.spaced("10 millis").pipe(Schedule.upTo({ times: 2 })),
  breakerFailures: 3,
  breakerOpen: "200 millis",
  callTimeoutMs: 1_000,
  connectTimeoutMs: 500,
};

describe("RedisBus while its Redis goes away", () => {
  let server: RedisServer;
  let scope: Scope.Closeable;
  let bus: RedisBus;
  let dir: string | undefined;
  const stats = (): Promise<RedisBusStats> => Effect.runPromise(bus.stats);

  const open = async (options: { appendonly?: boolean } = {}) => {
    dir = options.appendonly ? await mkdtemp(join(tmpdir(), "esper-redis-")) : undefined;
    server = await startRedisServer(options.appendonly ? { appendonly: true, appendfsync: "always", dir } : {});
    scope = await Effect.runPromise(Scope.make());
    bus = await Effect.runPromise(Scope.provide(scope)(makeRedisBus({ ...FAST, url: server.url })));
  };
  const goDown = async (signal: NodeJS.Signals = "SIGTERM") => {
    await server.stop(signal);
    await waitFor("the bus to see Redis gone", async () => !(await stats()).connected);
  };

  beforeEach(() => {
    dir = undefined;
  });
  afterEach(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void));
    await server.stop("SIGKILL");
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("commands wait in the outbox, are written in order when Redis returns, and beyond the bound publish fails with outbox_full", async () => {
    await open();
    const control = "t.control.layer.{A}";
    await goDown();

    const waiting: Promise<string>[] = [];
    for (let n = 1; n <= 5; n++) {
      waiting.push(Effect.runPromise(bus.publish(control, entry(n))));
      await waitFor(`entry ${n} in the outbox`, async () => (await stats()).outbox === n);
    }
    expect((await failure(bus.publish(control, entry(6)))).reason).toBe("outbox_full");
    expect((await failure(bus.publishMany([{ stream: control, fields: entry(7) }]))).reason).toBe("outbox_full");
    expect((await stats()).outbox).toBe(5);

    await server.start();
    const ids = await Promise.all(waiting);
    const written = await run(bus.range(control));
    expect(seqs(written)).toEqual(["1", "2", "3", "4", "5"]);
    expect(written.map((e) => e.id)).toEqual(ids);
    const after = await stats();
    expect(after).toMatchObject({ connected: true, outbox: 0 });
    expect(after.reconnects).toBeGreaterThanOrEqual(1);
  });

  it("telemetry waiting for Redis drops its oldest entries at its own bound, counts them, and does not hold commands back", async () => {
    await open();
    const telemetry = "t.telemetry.layer.{B}";
    const control = "t.control.layer.{B}";
    await goDown();
    for (let n = 1; n <= 5; n++) expect(await run(bus.publish(telemetry, entry(n)))).toBe("");
    const command = Effect.runPromise(bus.publish(control, entry(100)));
    await waitFor("the command in the outbox", async () => (await stats()).outbox === 1);
    expect(await stats()).toMatchObject({ outboxDroppable: 3, telemetryDropped: 2 });

    await server.start();
    await command;
    await waitFor("telemetry written", async () => (await stats()).outboxDroppable === 0 && (await run(bus.length(telemetry))) === 3);
    expect(seqs(await run(bus.range(telemetry)))).toEqual(["3", "4", "5"]);
    expect(seqs(await run(bus.range(control)))).toEqual(["100"]);
  });

  it("calls fail with unavailable while Redis is down, the breaker opens, and calls work again once it is back", async () => {
    await open();
    await goDown();
    for (let i = 0; i < 4; i++) expect((await failure(bus.length("t.any"))).reason).toBe("unavailable");
    expect((await stats()).breaker).toBe("Open");
    await server.start();
    await waitFor("calls to succeed again", async () => Exit.isSuccess(await Effect.runPromiseExit(bus.length("t.any"))));
    await waitFor("the breaker to close", async () => (await stats()).breaker === "Closed");
  });

  it("a publisher still waiting when the bus closes learns its entry was not written", async () => {
    await open();
    await goDown();
    const waiting = Effect.runPromiseExit(bus.publish("t.control.layer.{C}", entry(1)));
    await waitFor("the entry in the outbox", async () => (await stats()).outbox === 1);
    await Effect.runPromise(Scope.close(scope, Exit.void));
    const exit = await waiting;
    expect(Exit.isFailure(exit) && exit.cause.reasons.some((r) => r._tag === "Fail" && r.error.reason === "closed")).toBe(true);
  });

  it("a reader resumes after Redis restarts empty, recreating its group", async () => {
    await open();
    const s = "t.control.layer.{D}";
    await run(bus.ensureGroup(s, "kasmina", "0"));
    const readerScope = await Effect.runPromise(Scope.make());
    const reader = await Effect.runPromise(Scope.provide(readerScope)(bus.reader({ stream: s, group: "kasmina", consumer: "w", blockMs: 100 })));
    await run(bus.publish(s, entry(1)));
    const [first] = await Effect.runPromise(reader.read);
    await run(bus.ack(s, "kasmina", [first!.id]));

    await goDown();
    expect((await failure(reader.read)).reason).toBe("unavailable");
    await server.start();
    await waitFor("the bus to reconnect", async () => (await stats()).connected);
    await run(bus.publish(s, entry(2)));
    const { entries } = await readThroughOutage(reader);
    expect(seqs(entries)).toEqual(["2"]);
    await Effect.runPromise(Scope.close(readerScope, Exit.void));
  });

  it("a reader resumes after Redis is killed and restarted from its AOF, reading back what it held pending", async () => {
    await open({ appendonly: true });
    const s = "t.control.layer.{E}";
    await run(bus.ensureGroup(s, "kasmina", "0"));
    const readerScope = await Effect.runPromise(Scope.make());
    const reader = await Effect.runPromise(Scope.provide(readerScope)(bus.reader({ stream: s, group: "kasmina", consumer: "w", blockMs: 100 })));
    await run(bus.publishMany([1, 2].map((n) => ({ stream: s, fields: entry(n) }))));
    const held = await Effect.runPromise(reader.read);
    expect(seqs(held)).toEqual(["1", "2"]);
    await run(bus.ack(s, "kasmina", [held[0]!.id]));

    await goDown("SIGKILL");
    await server.start();
    const { entries } = await readThroughOutage(reader);
    expect(seqs(entries)).toEqual(["2"]);
    expect(entries[0]!.deliveries).toBe(2);
    expect(Array.from(entries[0]!.fields.data)).toEqual([2, 0, 255]);
    await waitFor("the bus to reconnect", async () => (await stats()).connected);
    await run(bus.publish(s, entry(3)));
    const next = await readThroughOutage(reader);
    expect(seqs(next.entries)).toEqual(["3"]);
    expect(next.entries[0]!.deliveries).toBe(1);
    await Effect.runPromise(Scope.close(readerScope, Exit.void));
  });
});
