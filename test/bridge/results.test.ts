/**
 * Every code of docs/protocol.md "Command results", as a client sees it: a command goes through the
 * control stream, the bridge and the layer, and its one CommandResult comes back on the event
 * stream. Entries that cannot be attributed to a command become dead letters instead. Each
 * behaviour runs on the embedded bus and on a real Redis.
 */
import { randomUUID } from "node:crypto";
import { beforeEach, describe, expect, test } from "vitest";
import { MAX_REASON_LENGTH, type SeedState } from "../../machines/lifecycle.ts";
import { seedMachine } from "../../machines/seed.ts";
import { encodeBody } from "../../src/protocol/codec.ts";
import { signEntry } from "../../src/protocol/entry.ts";
import { resumeCommand } from "../../src/protocol/make.ts";
import type { CommandResult } from "../../src/protocol/messages.ts";
import type { EsperClient } from "../../src/client/client.ts";
import { LayerHost } from "../../src/runtime/layer-host.ts";
import type { Command as HostedCommand } from "../../src/protocol/messages.ts";
import { batch, blueprint, emergencyStop, lifecycle } from "../runtime/commands.ts";
import {
  BUS_KINDS,
  decodeSeed,
  commandFields,
  deadLettersOf,
  openClient,
  openFixture,
  pendingOf,
  publishRaw,
  drained,
  resultsOf,
  run,
  settled,
  startBridge,
  transitionsOf,
  watchResults,
  type Fixture,
  type RunningBridge,
} from "./harness.ts";

const KEY = "a-deployment-key-of-32-characters";

type Sign = (fields: { readonly data: Uint8Array; readonly type: string }) => string | undefined;

describe.each(BUS_KINDS)("on %s, the bridge answers each command with its code", (kind) => {
  let fx: Fixture;
  let client: EsperClient;
  let worker: RunningBridge;
  beforeEach(async () => {
    fx = await openFixture(kind);
    worker = await startBridge(fx);
    client = await openClient(fx);
  });

  test("ok: a legal transition is applied, its result carries the edge, and the seed is persisted", async () => {
    const command = lifecycle("a", 0, "GERMINATED");
    const result = await client.send(command);
    expect(result).toMatchObject({ correlation_id: command.message_id, layer_id: "a", seed_id: 0, success: true, code: "ok", error: null, details: { from_state: "DORMANT", to_state: "GERMINATED" } });
    expect(worker.host.seed(0).state).toBe("GERMINATED");
    expect(await transitionsOf(fx, "a", command.message_id)).toMatchObject([{ seed_id: 0, from_state: "DORMANT", to_state: "GERMINATED" }]);
    const stored = await run(fx.bus.hgetall(fx.names.state("a")));
    expect(Object.keys(stored)).toEqual(["0"]);
    expect(decodeSeed(stored["0"]!).state).toBe("GERMINATED");
  });

  test("invalid_transition: DORMANT -> TRAINING is no edge; nothing moves", async () => {
    const result = await client.send(lifecycle("a", 0, "TRAINING"));
    expect(result).toMatchObject({ success: false, code: "invalid_transition", seed_id: 0 });
    expect(result.error).toMatch(/DORMANT -> TRAINING is not an edge/);
    expect(worker.host.seed(0).state).toBe("DORMANT");
  });

  test("guard_failed: TRAINING -> GRAFTING too early names the validator and the values it judged", async () => {
    for (const target of ["GERMINATED", "TRAINING"] as const) expect((await client.send(lifecycle("a", 1, target))).code).toBe("ok");
    const result = await client.send(lifecycle("a", 1, "GRAFTING", { metrics: { reconstruction_loss: 0.001 } }));
    expect(result).toMatchObject({
      success: false,
      code: "guard_failed",
      seed_id: 1,
      details: { from_state: "TRAINING", to_state: "GRAFTING", guard: "min_epochs", values: { epochs_in_state: 0, required: 100 } },
    });
    expect(result.error).toMatch(/0 epochs in TRAINING, needs at least 100/);
    expect(worker.host.seed(1).state).toBe("TRAINING");
  });

  test("terminal_state: a CANCELLED seed accepts nothing", async () => {
    for (const target of ["GERMINATED", "CANCELLED"] as const) expect((await client.send(lifecycle("a", 2, target))).code).toBe("ok");
    const result = await client.send(lifecycle("a", 2, "TRAINING", { force: true }));
    expect(result).toMatchObject({ success: false, code: "terminal_state", seed_id: 2 });
  });

  test("unknown_layer: a command naming layer b, found on layer a's stream, is refused by a and not applied", async () => {
    const results = await watchResults(client, "a");
    const command = lifecycle("b", 0, "GERMINATED");
    await publishRaw(fx, fx.names.control("a"), commandFields(fx, command, { stream: fx.names.control("a") }));
    const result = await results.result(command.message_id);
    expect(result).toMatchObject({ layer_id: "a", success: false, code: "unknown_layer" });
    expect(result.error).toMatch(/layer b arrived on .*control\.layer\.\{a\}/);
    expect(worker.host.seed(0).state).toBe("DORMANT");
  });

  test("unknown_seed: seed 99 of a 4-seed layer", async () => {
    const result = await client.send(lifecycle("a", 99, "GERMINATED"));
    expect(result).toMatchObject({ success: false, code: "unknown_seed", seed_id: 99 });
    expect(result.error).toMatch(/seeds 0\.\.3; there is no seed 99/);
  });

  // Regression (black-box finding 8): bad-schema commands were answered but not dead-lettered, so
  // `esper dlq list` never showed them.
  test("invalid_message: a command that breaks its schema but names its message_id gets a failed result and a dead letter", async () => {
    const results = await watchResults(client, "a");
    const messageId = randomUUID();
    const bad = { ...lifecycle("a", 0, "GERMINATED"), message_id: messageId, priority: "urgent", seed_id: "zero" };
    await publishRaw(fx, fx.names.control("a"), { data: encodeBody(bad, "msgpack"), type: "LifecycleTransitionCommand", enc: "msgpack" });
    const result = await results.result(messageId);
    expect(result).toMatchObject({ correlation_id: messageId, layer_id: "a", success: false, code: "invalid_message" });
    expect(result.error).toMatch(/LifecycleTransitionCommand does not match its schema/);
    await settled(worker, 1);
    expect(await pendingOf(fx, fx.names.control("a"))).toEqual([]);
    const [letter, ...more] = await deadLettersOf(fx, fx.names.dlq("a"));
    expect(more).toEqual([]);
    expect(letter).toMatchObject({ stream: fx.names.control("a"), code: "invalid_message", deliveries: 1 });
    expect(letter!.error).toBe(result.error);
    expect(worker.host.seed(0).state).toBe("DORMANT");
  });

  test("too_large: data over 1 MiB is never parsed, so it cannot be attributed: a dead letter with code too_large, no result", async () => {
    const command = { ...lifecycle("a", 0, "GERMINATED"), reason: "x".repeat(1_048_577) };
    const fields = commandFields(fx, command);
    expect(fields.data.byteLength).toBeGreaterThan(1_048_576);
    const id = await publishRaw(fx, fx.names.control("a"), fields);
    await settled(worker, 1);
    const [letter, ...more] = await deadLettersOf(fx, fx.names.dlq("a"));
    expect(more).toEqual([]);
    expect(letter).toMatchObject({ stream: fx.names.control("a"), id, code: "too_large", deliveries: 1 });
    expect(letter!.error).toMatch(/over the 1048576-byte limit/);
    expect(Buffer.from(letter!.fields.data as Uint8Array).equals(Buffer.from(fields.data))).toBe(true);
    expect(await resultsOf(fx, "a", command.message_id)).toEqual([]);
    expect(worker.host.seed(0).state).toBe("DORMANT");
    expect((await client.send(lifecycle("a", 0, "GERMINATED"))).code).toBe("ok");
  });

  test("rate_limited: a source over ratePerSource gets rate_limited, unapplied, and other sources are not held back", async () => {
    await worker.close();
    const limited = await startBridge(fx, { options: { ratePerSource: 2 } });
    const commands = [0, 1, 2, 3, 0].map((seed, i) => lifecycle("a", seed, i === 4 ? "TRAINING" : "GERMINATED", { source: "eager-controller" }));
    const results = await Promise.all(commands.map((c) => client.send(c)));
    const refused = results.filter((r) => r.code === "rate_limited");
    // Five in well under a second span at most two fixed windows of two: at least one is refused.
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const r of refused) expect(r.error).toMatch(/source eager-controller sent more than 2 commands in one second/);
    expect(results.every((r) => r.code === "ok" || r.code === "rate_limited" || r.code === "invalid_transition")).toBe(true);
    const applied = (await transitionsOf(fx, "a")).map((t) => t.correlation_id);
    for (const r of refused) expect(applied).not.toContain(r.correlation_id);
    const other = await client.send(lifecycle("a", 3, "GERMINATED", { source: "operator" }));
    expect(["ok", "invalid_transition"]).toContain(other.code);
    expect(limited.host.seed(3).state).toBe("GERMINATED");
  });

  test("timeout: a command older than its timeout_ms is answered timeout and not applied", async () => {
    const command = { ...lifecycle("a", 0, "GERMINATED", { timeoutMs: 1_000 }), timestamp: Date.now() / 1000 - 10 };
    const result = await client.send(command, { timeoutMs: 5_000 });
    expect(result).toMatchObject({ correlation_id: command.message_id, success: false, code: "timeout" });
    expect(result.details.local).toBeUndefined();
    expect(result.details.waited_ms).toBeGreaterThanOrEqual(10_000);
    expect(worker.host.seed(0).state).toBe("DORMANT");
    expect(await transitionsOf(fx, "a")).toEqual([]);
  });

  test("emergency_stopped: a stopped layer refuses growth until resumed", async () => {
    expect((await client.send(lifecycle("a", 0, "GERMINATED"))).code).toBe("ok");
    const stop = await client.send(emergencyStop("a", null, "loss exploded"));
    expect(stop).toMatchObject({ code: "ok", details: { stopped: true, seeds: [{ seed_id: 0, from: "GERMINATED", to: "CANCELLED" }] } });
    const refused = await client.send(lifecycle("a", 1, "GERMINATED"));
    expect(refused).toMatchObject({ success: false, code: "emergency_stopped", seed_id: 1 });
    expect(refused.error).toMatch(/emergency-stopped \(loss exploded\)/);
    expect((await client.send(resumeCommand({ layer_id: "a", source: "test" }))).code).toBe("ok");
    expect((await client.send(lifecycle("a", 1, "GERMINATED"))).code).toBe("ok");
  });
});

/** A seed that throws on entering `state`, once. */
const crashingOnce = (state: SeedState) => {
  let armed = true;
  return seedMachine.provide({
    actions: {
      entered: (_: unknown, params: { from: SeedState; to: SeedState }) => {
        if (params.to === state && armed) {
          armed = false;
          throw new Error("blueprint weights are NaN");
        }
      },
    },
  });
};

describe.each(BUS_KINDS)("on %s, a seed that crashes", (kind) => {
  test("internal: the command is answered internal, the seed is restarted from its last snapshot, and the layer goes on", async () => {
    const fx = await openFixture(kind);
    const restarts: number[] = [];
    const worker = await startBridge(fx, { host: { seedLogic: crashingOnce("GERMINATED"), onSeedRestart: (seedId) => restarts.push(seedId) } });
    const client = await openClient(fx);
    const crashed = await client.send(lifecycle("a", 0, "GERMINATED"));
    expect(crashed).toMatchObject({ success: false, code: "internal", seed_id: 0, details: { crashed: true, seeds: [0] } });
    expect(crashed.error).toMatch(/seed 0 crashed and was restarted from its last snapshot \(DORMANT\): blueprint weights are NaN/);
    expect(restarts).toEqual([0]);
    expect(await transitionsOf(fx, "a")).toEqual([]);
    const retried = await client.send(lifecycle("a", 0, "GERMINATED"));
    expect(retried).toMatchObject({ code: "ok", details: { from_state: "DORMANT", to_state: "GERMINATED" } });
    expect(worker.host.seed(0).state).toBe("GERMINATED");
  });
});

/** A data-plane registry with a bug: it throws (instead of answering -1) for one blueprint id. */
const buggyRegistry = (blueprintId: string | null): number => {
  if (blueprintId === "bp-bug") throw new TypeError("cannot read properties of undefined (reading 'alpha')");
  return blueprintId === null ? -1 : 0;
};

describe.each(BUS_KINDS)("on %s, an answer that would come out over the size limit", (kind) => {
  // Regression (found by the fuzz): a long stop reason is quoted in every refusal, twice in each
  // line of a batch's result; the answers over 1 MiB were written, no reader could decode them,
  // and their senders waited for nothing. (A reason may be 64 KiB at most; 20 refusals make 2.6 MB.)
  // The layer now keeps MAX_REASON_LENGTH characters of a reason, so its refusals stay small.
  test("a layer stopped with a 64 KiB reason refuses a batch readably, quoting the start of the reason", async () => {
    const fx = await openFixture(kind);
    await startBridge(fx, { numSeeds: 20 });
    const client = await openClient(fx);
    const reason = "x".repeat(65_000);
    expect((await client.send(emergencyStop("a", null, reason))).code).toBe("ok");
    const single = await client.send(lifecycle("a", 0, "GERMINATED"), { timeoutMs: 5_000 });
    expect(single).toMatchObject({ code: "emergency_stopped", seed_id: 0 });
    expect(single.details.local).toBeUndefined();
    expect(single.error).toContain("x".repeat(MAX_REASON_LENGTH - 1));
    expect(single.error!.length).toBeLessThan(MAX_REASON_LENGTH + 200);
    const both = await client.send(batch(Array.from({ length: 20 }, (_, seed) => lifecycle("a", seed, "GERMINATED")), { atomic: false, stopOnError: false }), { timeoutMs: 5_000 });
    expect(both).toMatchObject({ code: "emergency_stopped" });
    expect(both.details.results).toHaveLength(20);
    expect(both.details.local).toBeUndefined();
  });

  test("an answer over the size limit all the same (a layer whose messages are limited to 4 KiB) is written clipped, so the client still gets it", async () => {
    const fx = await openFixture(kind);
    await startBridge(fx, { numSeeds: 20, options: { maxBytes: 4_096 } });
    const client = await openClient(fx);
    expect((await client.send(emergencyStop("a", null, "y".repeat(250)))).code).toBe("ok");
    // 14 orders fit in 4 KiB; 14 refusals quoting the reason do not.
    const both = await client.send(batch(Array.from({ length: 14 }, (_, seed) => lifecycle("a", seed, "GERMINATED")), { atomic: false, stopOnError: false }), { timeoutMs: 5_000 });
    expect(both).toMatchObject({ code: "emergency_stopped" });
    expect(both.details.local).toBeUndefined();
    // In process nothing is encoded, so nothing has a size to keep within, and the answer stays whole.
    if (fx.bus.inProcess) expect(both.details.results).toHaveLength(14);
    else expect(both.details).toMatchObject({ truncated: true });
  });
});

describe.each(BUS_KINDS)("on %s, a bug in processing one entry", (kind) => {
  test("sets that entry aside as a dead letter with code internal; the batch around it commits and the layer reads on", async () => {
    const fx = await openFixture(kind);
    const worker = await startBridge(fx, { host: { blueprintIndex: buggyRegistry } });
    // Read together, the two transitions around it go to the layer as one run.
    const commands = [lifecycle("a", 0, "GERMINATED"), blueprint("a", 3, "bp-bug"), lifecycle("a", 1, "GERMINATED")];
    for (const c of commands) await publishRaw(fx, fx.names.control("a"), commandFields(fx, c));
    await settled(worker, 3);
    expect((await resultsOf(fx, "a")).map((r) => [r.correlation_id, r.code])).toEqual([
      [commands[0]!.message_id, "ok"],
      [commands[2]!.message_id, "ok"],
    ]);
    const letters = await deadLettersOf(fx, fx.names.dlq("a"));
    expect(letters).toMatchObject([{ code: "internal", stream: fx.names.control("a") }]);
    expect(letters[0]!.error).toMatch(/the layer could not process this entry: cannot read properties of undefined/);
    expect(await pendingOf(fx, fx.names.control("a"))).toEqual([]);
    const client = await openClient(fx);
    expect((await client.send(lifecycle("a", 2, "GERMINATED"))).code).toBe("ok");
  });
});

describe.each(BUS_KINDS)("on %s, with a deployment key", (kind) => {
  let fx: Fixture;
  let worker: RunningBridge;
  beforeEach(async () => {
    fx = await openFixture(kind);
    worker = await startBridge(fx, { options: { hmacKey: KEY } });
  });

  test("a signed command works, and the result the bridge writes is signed too", async () => {
    const client = await openClient(fx, { hmacKey: KEY });
    const command = lifecycle("a", 0, "GERMINATED");
    expect(await client.send(command)).toMatchObject({ code: "ok", correlation_id: command.message_id });
    const [entry] = (await run(fx.bus.range(fx.names.events("a")))).filter((e) => String(e.fields.type) === "CommandResult");
    expect(entry!.fields.sig).toBe(signEntry(KEY, fx.names.events("a"), "CommandResult", entry!.fields.data));
  });

  const signers: ReadonlyArray<readonly [string, Sign]> = [
    ["unsigned", () => undefined],
    ["signed with another key", (f) => signEntry("not-the-deployment-key", fx.names.control("a"), f.type, f.data)],
    ["signed for another stream", (f) => signEntry(KEY, fx.names.control("b"), f.type, f.data)],
    ["with a sig that is not hex", () => "zz"],
  ];
  test.each(signers)("bad_signature: a command %s is a dead letter, never applied nor answered", async (_label, sign) => {
    const command = lifecycle("a", 0, "GERMINATED");
    const fields = commandFields(fx, command);
    const sig = sign(fields);
    const id = await publishRaw(fx, fx.names.control("a"), sig === undefined ? fields : { ...fields, sig });
    await settled(worker, 1);
    const letters = await deadLettersOf(fx, fx.names.dlq("a"));
    expect(letters).toMatchObject([{ id, code: "bad_signature", stream: fx.names.control("a") }]);
    expect(await resultsOf(fx, "a", command.message_id)).toEqual([]);
    expect(worker.host.seed(0).state).toBe("DORMANT");
    expect(await pendingOf(fx, fx.names.control("a"))).toEqual([]);
    const client = await openClient(fx, { hmacKey: KEY });
    expect((await client.send(lifecycle("a", 0, "GERMINATED"))).code).toBe("ok");
  });
});

describe.each(BUS_KINDS)("on %s, unattributable garbage", (kind) => {
  test.each([
    ["random bytes with a command type", () => ({ data: new Uint8Array([0xc1, 0xff, 0x00, 0x13, 0x37]), type: "LifecycleTransitionCommand", enc: "msgpack" })],
    ["a map without message_id", () => ({ data: encodeBody({ message_type: "LifecycleTransitionCommand", layer_id: "a", seed_id: 0 }, "msgpack"), type: "LifecycleTransitionCommand", enc: "msgpack" })],
    ["an entry without a type field", () => ({ data: encodeBody(lifecycle("a", 0, "GERMINATED"), "msgpack"), enc: "msgpack" })],
    ["an unknown codec", () => ({ data: new Uint8Array([1, 2, 3]), type: "LifecycleTransitionCommand", enc: "protobuf" })],
    ["a valid event where commands belong", () => ({ data: encodeBody({ ...resultLike(), message_type: "CommandResult" }, "msgpack"), type: "CommandResult", enc: "msgpack" })],
  ] as const)("%s becomes a dead letter on P.dlq.layer.{L}; the worker goes on and the next command works", async (_label, make) => {
    const fx = await openFixture(kind);
    const worker = await startBridge(fx);
    const client = await openClient(fx);
    const fields = make() as Record<string, Uint8Array | string>;
    const before = Date.now();
    const id = await publishRaw(fx, fx.names.control("a"), fields);
    await settled(worker, 1);
    const letters = await deadLettersOf(fx, fx.names.dlq("a"));
    expect(letters).toHaveLength(1);
    const letter = letters[0]!;
    expect(letter).toMatchObject({ stream: fx.names.control("a"), id, deliveries: 1 });
    expect(letter.code).toBe("invalid_message");
    expect(letter.error.length).toBeGreaterThan(10);
    expect(letter.failedAt).toBeGreaterThanOrEqual(before - 5);
    expect(letter.failedAt).toBeLessThanOrEqual(Date.now() + 5);
    // The original fields travel with the letter, so a replay puts back exactly what was sent.
    expect(Object.keys(letter.fields).sort()).toEqual(Object.keys(fields).sort());
    expect(Buffer.from(letter.fields.data as Uint8Array).equals(Buffer.from(fields.data as Uint8Array))).toBe(true);
    expect(await resultsOf(fx, "a")).toEqual([]);
    expect(await pendingOf(fx, fx.names.control("a"))).toEqual([]);
    const next = await client.send(lifecycle("a", 0, "GERMINATED"));
    expect(next.code).toBe("ok");
    await drained(fx, fx.names.control("a"));
    expect(await deadLettersOf(fx, fx.names.dlq("a"))).toHaveLength(1);
  });
});

const resultLike = (): Omit<CommandResult, "message_type"> => ({
  message_id: randomUUID(),
  timestamp: Date.now() / 1000,
  source: "somebody",
  version: "1.0",
  correlation_id: randomUUID(),
  layer_id: "a",
  seed_id: 0,
  success: true,
  error: null,
  code: "ok",
  details: {},
  execution_time_ms: 1,
});
