/**
 * The bridge's four steps, each on its own and without a bus: decode (entries to messages, or
 * why not), admit (what each comes to before the layer sees it), settle (the layer decides, in
 * order) and plan (one atomic commit). And the source rates they take.
 */
import { Effect } from "effect";
import { describe, expect, test } from "vitest";
import { BusError, type Bus, type Entry, type EntryFields } from "../../src/bus/bus.ts";
import { commitUntilLanded } from "../../src/bridge/commit-loop.ts";
import { admit, readmit, type Admission, type AdmitContext } from "../../src/bridge/admit.ts";
import { decodeRead, type Read } from "../../src/bridge/decode.ts";
import { planCommit, type PlanContext } from "../../src/bridge/plan.ts";
import { settle } from "../../src/bridge/settle.ts";
import { SourceRates } from "../../src/bridge/source-rates.ts";
import { layerKeys } from "../../src/bridge/store.ts";
import { encodeEntry } from "../../src/protocol/entry.ts";
import { emergencyStopCommand, lifecycleCommand } from "../../src/protocol/make.ts";
import type { Command, CommandResult, Message } from "../../src/protocol/messages.ts";
import { GROUPS, streams } from "../../src/protocol/streams.ts";
import { LayerHost } from "../../src/runtime/layer-host.ts";

const names = streams("steps");
const keys = layerKeys(names, "a");
const NOW = 1_700_000_000_000;
let seq = 0;
const entryOf = (fields: EntryFields, deliveries = 1, stream = keys.control): Entry => ({ stream, id: `${NOW}-${seq++}`, fields, deliveries });
const readOf = (command: Message, options: { deliveries?: number; stream?: string; key?: string } = {}): Read => {
  const stream = options.stream ?? keys.control;
  return { stream, entry: entryOf(encodeEntry(command, { stream, ...(options.key ? { hmacKey: options.key } : {}) }), options.deliveries ?? 1, stream) };
};
const command = (seed: number | null, target: string, extra: Partial<Parameters<typeof lifecycleCommand>[0]> = {}) =>
  lifecycleCommand({ layer_id: "a", seed_id: seed, target_state: target as never, timestamp: NOW / 1000, ...extra });
const options = { maxBytes: 1_048_576, hmacKey: undefined, maxSignedAgeMs: 60_000 };
const context = (over: Partial<AdmitContext> = {}): AdmitContext => ({
  layerId: "a",
  allStream: keys.all,
  now: NOW,
  maxDeliveries: 5,
  known: null,
  rates: new SourceRates({ perSecond: 100 }),
  ratePerSource: 100,
  source: "esper.layer.a",
  ...over,
});
const decodeAll = (reads: readonly Read[]) => reads.map((r) => decodeRead(r, options));

describe("decode", () => {
  test("an oversize stub is too_large, attributed by its type alone", () => {
    const d = decodeRead({ stream: keys.control, entry: { ...entryOf({ data: new Uint8Array(0), type: "LifecycleTransitionCommand" }), oversize: 5_000_000 } }, options);
    expect(d).toMatchObject({ ok: false, error: { code: "too_large", partial: { message_type: "LifecycleTransitionCommand" } } });
  });

  test("a signed command written long after its own timestamp is bad_signature, naming why; a fresh one decodes", () => {
    const key = "k".repeat(20);
    const stale = readOf(command(0, "GERMINATED", { timestamp: (NOW - 120_000) / 1000 }), { key });
    const fresh = readOf(command(0, "GERMINATED"), { key });
    const signed = { ...options, hmacKey: key };
    expect(decodeRead(stale, signed)).toMatchObject({ ok: false, error: { code: "bad_signature", partial: { message_type: "LifecycleTransitionCommand" } } });
    expect(decodeRead(stale, signed).ok === false && decodeRead(stale, signed)).toMatchObject({ error: { message: expect.stringMatching(/written 120 s away from its own timestamp/) } });
    expect(decodeRead(fresh, signed).ok).toBe(true);
    // Without a key nothing is signed, and freshness is not asked.
    expect(decodeRead(readOf(command(0, "GERMINATED", { timestamp: (NOW - 120_000) / 1000 })), options).ok).toBe(true);
  });
});

describe("admit", () => {
  test("stops go first, stably; another layer's entry on P.control.all is skipped; undecodable ones are dead (and answered when attributable)", () => {
    const a = command(0, "GERMINATED");
    const stop = emergencyStopCommand({ layer_id: "a", timestamp: NOW / 1000 });
    const b = command(1, "GERMINATED");
    const other = emergencyStopCommand({ layer_id: "b", timestamp: NOW / 1000 });
    const bad: Read = { stream: keys.control, entry: entryOf(encodeEntry({ ...command(2, "GERMINATED"), seed_id: "two" } as unknown as Message, { stream: keys.control })) };
    const reads = [readOf(a), bad, readOf(stop), readOf(b), readOf(other, { stream: keys.all })];
    const admitted = admit(decodeAll(reads), context());
    expect(admitted.map((x) => x.kind)).toEqual(["apply", "apply", "dead", "apply", "skip"]);
    expect(admitted[0]).toMatchObject({ command: { message_type: "EmergencyStopCommand" } });
    expect(admitted.slice(1, 4).map((x) => ("command" in x ? x.command.message_id : "dead"))).toEqual([a.message_id, "dead", b.message_id]);
    expect(admitted[2]).toMatchObject({ kind: "dead", code: "invalid_message", answer: { code: "invalid_message", success: false } });
  });

  test("a stop for every layer on P.control.all becomes this layer's; a command for another layer on this layer's stream is refused", () => {
    const all = emergencyStopCommand({ layer_id: null, timestamp: NOW / 1000 });
    const wrong = lifecycleCommand({ layer_id: "b", seed_id: 0, target_state: "GERMINATED", timestamp: NOW / 1000 });
    const [first, second] = admit(decodeAll([readOf(all, { stream: keys.all }), readOf(wrong)]), context());
    expect(first).toMatchObject({ kind: "apply", command: { layer_id: "a" } });
    expect(second).toMatchObject({ kind: "refuse", code: "unknown_layer" });
  });

  test("overdue (not a stop), over its source's rate, delivered too often, or answered before", () => {
    const late = command(0, "GERMINATED", { timestamp: (NOW - 10_000) / 1000, timeout_ms: 5_000 });
    const lateStop = emergencyStopCommand({ layer_id: "a", timestamp: (NOW - 10_000) / 1000 });
    const known = command(1, "GERMINATED");
    const before = { code: "ok", correlation_id: known.message_id } as unknown as CommandResult;
    const tiredCommand = command(2, "GERMINATED");
    const tired = readOf(tiredCommand, { deliveries: 6 });
    const admitted = admit(decodeAll([readOf(late), readOf(lateStop), readOf(known), tired]), context({ known: new Map([[known.message_id, before]]) }));
    expect(admitted.map((x) => x.kind)).toEqual(["apply", "refuse", "answered", "dead"]);
    expect(admitted[1]).toMatchObject({ code: "timeout", details: { waited_ms: 10_000 } });
    expect(admitted[3]).toMatchObject({ code: "internal", error: expect.stringMatching(/exceeded max deliveries \(5\)/) });
    // Its sender waits for an answer: it hears why instead of timing out.
    expect((admitted[3] as Extract<Admission, { kind: "dead" }>).answer).toMatchObject({
      correlation_id: tiredCommand.message_id,
      code: "internal",
      success: false,
      seed_id: 2,
      details: { deliveries: 6 },
      error: expect.stringMatching(/exceeded max deliveries .*not applied and is in the dead-letter stream/),
    });
    const flood = Array.from({ length: 5 }, (_, i) => readOf(command(i, "GERMINATED", { source: "noisy" })));
    const rated = admit(decodeAll(flood), context({ rates: new SourceRates({ perSecond: 3 }), ratePerSource: 3 }));
    expect(rated.map((x) => (x.kind === "refuse" ? x.code : x.kind))).toEqual(["apply", "apply", "apply", "rate_limited", "rate_limited"]);
    // Admitted again with what is now stored, the rate verdicts stay as they were.
    const again = readmit(rated, new Map([[(rated[0] as { command: Command }).command.message_id, before]]));
    expect(again.map((x) => x.kind)).toEqual(["answered", "apply", "apply", "refuse", "refuse"]);
  });
});

describe("source rates", () => {
  test("count each source per one-second window, forget them when it turns, and count sources past the bound as one", () => {
    const rates = new SourceRates({ perSecond: 2, maxSources: 3 });
    expect(rates.take("a", 3, 1_000)).toBe(2);
    expect(rates.take("a", 1, 1_999)).toBe(0);
    expect(rates.take("a", 1, 2_000)).toBe(1);
    expect(rates.size).toBe(1);
    for (const s of ["b", "c"]) rates.take(s, 1, 2_000);
    // A fourth, fifth... source in the same window share one counter: a flood of new names is one source.
    expect(rates.take("d", 1, 2_000)).toBe(1);
    expect(rates.take("e", 1, 2_000)).toBe(1);
    expect(rates.take("f", 1, 2_000)).toBe(0);
    expect(rates.size).toBe(4);
    rates.take("a", 1, 3_500);
    expect(rates.size).toBe(1);
    expect(new SourceRates({ perSecond: 0 }).take("x", 1_000_000, 0)).toBe(1_000_000);
  });
});

describe("settle and plan", () => {
  const plan = (overrides: Partial<PlanContext> = {}): PlanContext => ({
    keys,
    groupOf: (stream) => (stream === keys.all ? keys.allGroup : GROUPS.kasmina),
    encode: (m) => encodeEntry(m, { stream: keys.events }),
    maxLen: 1_000,
    dedupeWindow: 100,
    generation: "g1",
    snapshots: new Map(),
    marker: { field: "commit.w", previous: null, token: "t1" },
    now: NOW,
    ...overrides,
  });

  test("settle applies in order, answers a copy in the same batch as a duplicate, and says which seeds and record changed", () => {
    const host = new LayerHost({ layerId: "a", numSeeds: 4 });
    const a = command(0, "GERMINATED");
    const settlement = settle(admit(decodeAll([readOf(a), readOf(a), readOf(command(1, "GERMINATED"))]), context()), host, { now: NOW });
    expect(settlement.settled.map((s) => (s.kind === "answer" ? [s.result.code, s.first, s.result.details.duplicate ?? false] : s.kind))).toEqual([
      ["ok", true, false],
      ["ok", false, true],
      ["ok", true, false],
    ]);
    expect([...settlement.changed].sort()).toEqual([0, 1]);
    expect(settlement.record).toBeUndefined();
    // A stop goes first and changes the layer's record; what it overtook is refused.
    const stop = emergencyStopCommand({ layer_id: "a", reason: "overheat", timestamp: NOW / 1000 });
    const stopped = settle(admit(decodeAll([readOf(command(2, "GERMINATED")), readOf(stop)]), context()), host, { now: NOW });
    expect(stopped.settled.map((s) => (s.kind === "answer" ? s.result.code : s.kind))).toEqual(["ok", "emergency_stopped"]);
    expect(stopped.record).toEqual({ epoch: 0, stopReason: "overheat", leaderToken: 0 });
    expect([...stopped.changed].sort()).toEqual([0, 1]);
    host.stop();
  });

  test("plan: generation and dedupe preconditions first, letters and events in order, hashes, then acks; an entry found ahead is deleted, not acked", () => {
    const host = new LayerHost({ layerId: "a", numSeeds: 4 });
    const a = readOf(command(0, "GERMINATED"));
    const garbage: Read = { stream: keys.control, entry: entryOf({ data: new Uint8Array([0xc1]), type: "LifecycleTransitionCommand", enc: "msgpack" }) };
    const stop = emergencyStopCommand({ layer_id: "a", timestamp: NOW / 1000 });
    const ahead: Read = { ...readOf(stop), ahead: true };
    const settlement = settle(admit(decodeAll([a, garbage, ahead]), context()), host, { now: NOW });
    const ops = planCommit(settlement, plan({ snapshots: new Map([[0, host.seed(0)]]) }));
    // The stop first (its answer), then a's refusal, then the garbage's letter.
    expect(ops.map((op) => op.op)).toEqual(["expect", "expect", "absent", "absent", "xadd", "xadd", "deadletter", "hset", "rotate", "hset", "hset", "ack", "xdel"]);
    expect(ops[0]).toEqual({ op: "expect", key: keys.meta, field: "generation", value: "g1" });
    // Chained: the store must hold this bridge's last commit (none yet).
    expect(ops[1]).toEqual({ op: "expect", key: keys.meta, field: "commit.w", value: null });
    const answered = settlement.settled.flatMap((x) => (x.kind === "answer" ? [x.result.correlation_id] : []));
    expect(ops[2]).toMatchObject({ op: "absent", key: keys.results, fields: answered });
    expect(answered[0]).toBe(stop.message_id);
    expect(ops[6]).toMatchObject({ op: "deadletter", dlq: keys.dlq, id: garbage.entry.id, code: "invalid_message" });
    expect(ops[10]).toMatchObject({ op: "hset", key: keys.meta, values: { "commit.w": "t1", layer: expect.any(Uint8Array) } });
    // The letter acks the garbage itself.
    expect(ops[11]).toMatchObject({ op: "ack", stream: keys.control, ids: [a.entry.id] });
    expect(ops[12]).toEqual({ op: "xdel", stream: keys.control, ids: [ahead.entry.id] });
    host.stop();
  });
});

describe("commit until landed", () => {
  const policy = { maxCommitAttempts: 3, maxRetryDelayMs: 10, what: "test" };
  const failingBus = (reason: BusError["reason"]) => {
    let calls = 0;
    const bus = { commit: () => Effect.suspend(() => (calls++, Effect.fail(new BusError({ reason, message: `commit: ${reason}` })))) } as unknown as Bus;
    return { bus, calls: () => calls };
  };
  const land = (bus: Bus) => Effect.runPromise(commitUntilLanded(bus, [], Effect.succeed(false), policy, (e) => e));

  test("a closed bus is the caller's at once: one attempt, not maxCommitAttempts (the worker is stopping)", async () => {
    const { bus, calls } = failingBus("closed");
    expect(await land(bus)).toMatchObject({ landed: false, error: { reason: "closed" } });
    expect(calls()).toBe(1);
  });

  test("a failure that is the batch's is tried maxCommitAttempts times in all", async () => {
    const { bus, calls } = failingBus("command_failed");
    expect(await land(bus)).toMatchObject({ landed: false, error: { reason: "command_failed" } });
    expect(calls()).toBe(3);
  });
});
