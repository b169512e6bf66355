/**
 * The chaos test: 10,000 lifecycle commands through `esper worker` on a private redis-server
 * (appendonly, appendfsync always), while the test SIGKILLs Redis and restarts it from its AOF,
 * and SIGKILLs the worker and starts it again (once under a new consumer name, so the new worker
 * must take over what the dead one held, and apply it first). Once it also stalls Redis (SIGSTOP) past the bus's call
 * limit, so commits are retried whose first attempt Redis still runs: that found commits applied
 * twice (see commit-retry.test.ts). The client re-sends every command whose result is late with
 * the same message_id. Afterwards the event streams must show, for every command, exactly one
 * transition and exactly one result not flagged as a duplicate; the state hash must agree; the
 * dead-letter streams must be empty.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Effect, Exit, Fiber, Schedule, Scope } from "effect";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { listDeadLetters } from "../../src/bus/dead-letters.ts";
import { makeRedisBus, type RedisBus } from "../../src/bus/redis-bus.ts";
import { REDIS_BUS_DEFAULTS } from "../../src/bus/redis-options.ts";
import { streams } from "../../src/protocol/streams.ts";
import { startRedisServer, type RedisServer } from "../support/redis-server.ts";
import { planCommands, type CommandPlan } from "./command-plan.ts";
import { Driver } from "./driver.ts";
import { audit, Ledger } from "./ledger.ts";
import { follow, quiesce, readAll, record, seedsNotAtTheirEnd } from "./streams-audit.ts";
import { WorkerProcess } from "../support/worker-process.ts";

const COMMANDS = 10_000;
const LAYERS = ["chaos-a", "chaos-b"] as const;
const names = streams("chaos");
/** Seeds walked at once, hence commands in flight. */
const CONCURRENCY = 400;
/** A result later than this gets its command sent again (same message_id); the wait doubles per re-send, up to 4 times this. */
const RESEND_AFTER_MS = 2_000;
/** How long Redis stays dead before it is restarted from its AOF. */
const REDIS_DOWN_MS = 500;
/** A stall (SIGSTOP) longer than the bus's call limit: replies come after their callers gave up on them. */
const REDIS_STALL_MS = REDIS_BUS_DEFAULTS.callTimeoutMs + 1_500;
/** The whole run gives up after this (vitest's own limit is later, so the failure says what was missing). */
const RUN_LIMIT_MS = 200_000;

/** What the chaos does, in order, each once this fraction of the commands has been answered. */
type Blow = "kill redis" | "stall redis" | "kill worker" | "kill worker, restart as a new consumer";
const SCHEDULE: ReadonlyArray<{ readonly at: number; readonly blow: Blow }> = [
  { at: 0.08, blow: "kill redis" },
  { at: 0.22, blow: "kill worker" },
  { at: 0.38, blow: "kill redis" },
  { at: 0.45, blow: "stall redis" },
  { at: 0.52, blow: "kill worker, restart as a new consumer" },
  { at: 0.68, blow: "kill redis" },
  { at: 0.82, blow: "kill worker" },
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect);

describe("chaos: Redis and the worker SIGKILLed under 10,000 commands", () => {
  let dir: string;
  let redis: RedisServer | undefined;
  let worker: WorkerProcess | undefined;
  let scope: Scope.Closeable | undefined;
  let bus: RedisBus;
  let driver: Driver | undefined;
  const followers: Fiber.Fiber<unknown, unknown>[] = [];
  const plan: CommandPlan = planCommands(names, LAYERS, COMMANDS);
  const killAll = () => {
    worker?.killNow();
    const pid = redis?.pid();
    if (pid !== undefined) process.kill(pid, "SIGKILL");
  };

  beforeAll(async () => {
    // If vitest itself goes down, the children go with it.
    process.once("exit", killAll);
    dir = await mkdtemp(join(tmpdir(), "esper-chaos-"));
    redis = await startRedisServer({ appendonly: true, appendfsync: "always", dir });
    scope = await run(Scope.make());
    bus = await run(Scope.provide(scope)(makeRedisBus({ url: redis.url, reconnect: Schedule.spaced("100 millis") })));
    worker = new WorkerProcess({ redisUrl: redis.url, namespace: names.namespace, layers: LAYERS, seeds: plan.seedsPerLayer});
    await worker.start("chaos-worker-1", 90_000);
  }, 120_000);

  afterAll(async () => {
    driver?.stop();
    for (const fiber of followers.splice(0)) await run(Fiber.interrupt(fiber));
    await worker?.kill();
    if (scope !== undefined) await run(Scope.close(scope, Exit.void));
    await redis?.stop("SIGKILL");
    process.off("exit", killAll);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  }, 30_000);

  test("every command: exactly one transition, exactly one result (duplicates flagged), no dead letters", async () => {
    const startedAt = Date.now();
    const live = new Ledger(plan);
    followers.push(...LAYERS.map((layer) => Effect.runFork(follow(bus, names.events(layer), live))));
    const client = new Driver(plan, {
      concurrency: CONCURRENCY,
      resendAfterMs: RESEND_AFTER_MS,
      publish: (command) => run(bus.publish(command.stream, command.fields)),
      ledger: live,
      deadline: startedAt + RUN_LIMIT_MS,
    });

    const blows = { redis: 0, stall: 0, worker: 0 };
    const timings: string[] = [];
    let consumer = 1;
    let driving = true;
    const chaos = async () => {
      for (const { at, blow } of SCHEDULE) {
        while (driving && client.stats.answered < at * COMMANDS) await sleep(20);
        if (!driving) return;
        const blowAt = Date.now();
        if (blow === "kill redis") {
          await redis!.stop("SIGKILL");
          blows.redis++;
          await sleep(REDIS_DOWN_MS);
          await redis!.start();
        } else if (blow === "stall redis") {
          process.kill(redis!.pid()!, "SIGSTOP");
          blows.stall++;
          await sleep(REDIS_STALL_MS);
          process.kill(redis!.pid()!, "SIGCONT");
        } else {
          await worker!.kill();
          blows.worker++;
          if (blow === "kill worker, restart as a new consumer") consumer++;
          await worker!.start(`chaos-worker-${consumer}`);
        }
        timings.push(`${blow} ${((Date.now() - blowAt) / 1000).toFixed(1)} s`);
      }
    };
    // A blow that fails (a worker that never gets ready) ends the run with its own error.
    let chaosError: unknown;
    const chaosDone = chaos().catch((error: unknown) => {
      chaosError = error;
      client.stop();
    });
    driver = client;
    const driven = await client.run().catch(async (error: unknown) => {
      driving = false;
      await chaosDone;
      throw chaosError ?? error;
    });
    driving = false;
    await chaosDone;
    if (chaosError !== undefined) throw chaosError;

    // Re-sent commands may still wait in the control streams: let the worker finish them, so
    // nothing it still writes can be missed by the audit below.
    await quiesce(redis!.url, names, plan, startedAt + RUN_LIMIT_MS);
    for (const fiber of followers.splice(0)) await run(Fiber.interrupt(fiber));

    const ledger = new Ledger(plan);
    for (const layer of LAYERS) for (const entry of await readAll(bus, names.events(layer))) record(ledger, entry);
    const result = audit(plan, ledger);
    const wrongStates = await seedsNotAtTheirEnd(bus, names, plan);
    const deadLetters = await Promise.all([...LAYERS.map((l) => names.dlq(l)), names.dlqAll].map((dlq) => run(listDeadLetters(bus, dlq, { count: 20 }))));
    const letters = deadLetters.flat();
    const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);

    console.log(
      `chaos: ${result.commands} commands, ${result.transitions} transitions, ${result.lost.length} lost, ${result.doubled.length} doubled, ` +
        `${result.duplicateResults} duplicate results flagged, redis kills ${blows.redis}, redis stalls ${blows.stall}, worker kills ${blows.worker}, ${seconds} s`,
    );
    console.log(
      `chaos: ${driven.sends} sends (${driven.resends} re-sends, ${driven.publishFailures} failed publishes), ${result.wrong.length} wrong, ` +
        `${result.strays} stray events, ${wrongStates.length} seeds off their end state, ${letters.length} dead letters, ` +
        `${worker!.unplannedExits.length} unplanned worker exits; ${timings.join(", ")}`,
    );

    const report = [
      ...result.examples,
      ...wrongStates.slice(0, 10),
      ...letters.map((l) => `dead letter ${l.dlqId} of ${l.stream} ${l.id}: ${l.code} ${l.error} (deliveries ${l.deliveries})`),
      ...worker!.unplannedExits.map((e) => `worker ${e.consumer} exited by itself (code ${e.code}, signal ${e.signal}, ready ${e.wasReady}):\n${e.tail}`),
      ...driven.refused.slice(0, 10).map((r) => `refused: ${r}`),
    ].join("\n");
    expect(blows, "the chaos schedule ran in full").toEqual({ redis: 3, stall: 1, worker: 3 });
    expect({ lost: result.lost.length, doubled: result.doubled.length, wrong: result.wrong.length, strays: result.strays }, report).toEqual({ lost: 0, doubled: 0, wrong: 0, strays: 0 });
    expect(result.transitions, report).toBe(COMMANDS);
    expect(driven.refused, report).toEqual([]);
    expect(wrongStates, report).toEqual([]);
    expect(letters, report).toEqual([]);
    expect(worker!.unplannedExits.filter((e) => e.wasReady), report).toEqual([]);
  }, 240_000);
});
