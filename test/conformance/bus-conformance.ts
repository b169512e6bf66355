import { Effect, Exit, Schedule, Scope } from "effect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LEASE_OWNER_FIELD, type Bus, type BusError, type Entry, type EntryFields, type Reader, type ReaderOptions } from "../../src/bus/bus.ts";
import { listDeadLetters, replayDeadLetter } from "../../src/bus/dead-letters.ts";
import { maxDeliveriesError, runJanitor, sweep } from "../../src/bus/janitor.ts";

/** What the suite needs from a bus under test. */
export interface BusHarness {
  readonly bus: Bus;
  /** Runs a bus call the way the bus under test reads time (MemoryBus: under the harness's TestClock). */
  readonly provide: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>;
  /** Lets `ms` pass for pending entries and blocked reads: a real sleep on Redis (its own clock), a TestClock move on MemoryBus. */
  readonly letIdle: (ms: number) => Promise<void>;
  /** The bus's time in ms (the TestClock on MemoryBus, the wall clock on Redis). */
  readonly now: () => number;
  /** The idle time tests claim after (small on Redis, where it is real time). */
  readonly idleMs: number;
  /** A key of this test alone, under its namespace. */
  readonly key: (name: string) => string;
  readonly close: () => Promise<void>;
}

let current: BusHarness | undefined;
const provided = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => (current === undefined ? effect : current.provide(effect));

const run = <A>(effect: Effect.Effect<A, BusError, Scope.Scope>): Promise<A> => Effect.runPromise(provided(Effect.scoped(effect)));

const failure = async (effect: Effect.Effect<unknown, BusError, Scope.Scope>): Promise<BusError> => {
  const exit = await Effect.runPromise(provided(Effect.exit(Effect.scoped(effect))));
  if (Exit.isSuccess(exit)) throw new Error("expected a BusError, got success");
  const error = exit.cause.reasons.find((r) => r._tag === "Fail");
  if (error === undefined || error._tag !== "Fail") throw new Error(`expected a BusError, got ${String(exit.cause)}`);
  return error.error;
};

/** Lets the event loop turn until `done()` holds (the bus delivers on its own fibers): no fixed sleep. */
const until = async (done: () => boolean, what: string): Promise<void> => {
  for (let turns = 0; !done(); turns++) {
    if (turns > 10_000) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
};
const bytes = (...values: number[]) => new Uint8Array(values);
const entry = (n: number, extra: Record<string, string> = {}): EntryFields => ({
  data: bytes(0, 255, n, 10, 13),
  type: "LifecycleTransitionCommand",
  seq: String(n),
  ...extra,
});
const seqs = (entries: readonly Entry[]) => entries.map((e) => e.fields.seq);
const dataOf = (fields: EntryFields) => Array.from(fields.data);

/** A reader living in its own Scope, so a test can "restart" a consumer by closing it. */
const openReader = async (bus: Bus, options: ReaderOptions): Promise<{ reader: Reader; read: () => Promise<readonly Entry[]>; close: () => Promise<void> }> => {
  const scope = await Effect.runPromise(Scope.make());
  const reader = await Effect.runPromise(provided(Scope.provide(scope)(bus.reader(options))));
  return { reader, read: () => Effect.runPromise(provided(reader.read)), close: () => Effect.runPromise(Scope.close(scope, Exit.void)) };
};

export const busConformance = (name: string, makeHarness: () => Promise<BusHarness>): void => {
  describe(`${name} conforms to the Bus contract`, () => {
    let h: BusHarness;
    let bus: Bus;
    let opened: BusHarness | undefined;
    beforeEach(async () => {
      h = opened = current = await makeHarness();
      bus = h.bus;
    });
    afterEach(async () => {
      await opened?.close();
      opened = current = undefined;
    });

    it("delivers published entries to a group member in stream order, bytes intact", async () => {
      const s = h.key("control.layer.{L0}");
      await run(bus.ensureGroup(s, "kasmina", "0"));
      const ids = [];
      for (let n = 1; n <= 3; n++) ids.push(await run(bus.publish(s, entry(n, { enc: "msgpack" }))));
      const got = await run(Effect.flatMap(bus.reader({ stream: s, group: "kasmina", consumer: "w1", blockMs: 0 }), (r) => r.read));
      expect(got.map((e) => e.id)).toEqual(ids);
      expect(seqs(got)).toEqual(["1", "2", "3"]);
      expect(got.every((e) => e.deliveries === 1 && e.stream === s)).toBe(true);
      expect(got[0]!.fields.data).toBeInstanceOf(Uint8Array);
      expect(dataOf(got[0]!.fields)).toEqual([0, 255, 1, 10, 13]);
      expect(got[0]!.fields.type).toBe("LifecycleTransitionCommand");
      expect(got[0]!.fields.enc).toBe("msgpack");
      const pending = await run(bus.pending(s, "kasmina"));
      expect(pending.map((p) => [p.id, p.consumer, p.deliveries])).toEqual(ids.map((id) => [id, "w1", 1]));
    });

    it("ack removes entries from the pending list and counts only what was pending", async () => {
      const s = h.key("control.layer.{L1}");
      await run(bus.ensureGroup(s, "g", "0"));
      await run(bus.publishMany([1, 2, 3].map((n) => ({ stream: s, fields: entry(n) }))));
      const got = await run(Effect.flatMap(bus.reader({ stream: s, group: "g", consumer: "c", blockMs: 0 }), (r) => r.read));
      expect(await run(bus.ack(s, "g", [got[0]!.id, got[1]!.id]))).toBe(2);
      expect(await run(bus.ack(s, "g", [got[0]!.id]))).toBe(0);
      expect(await run(bus.ack(s, "no-such-group", [got[2]!.id]))).toBe(0);
      expect((await run(bus.pending(s, "g"))).map((p) => p.id)).toEqual([got[2]!.id]);
    });

    it("members of one group share the entries, and every group sees every entry", async () => {
      const s = h.key("event.layer.{L2}");
      await run(bus.ensureGroup(s, "tamiyo", "0"));
      await run(bus.publishMany([1, 2, 3, 4].map((n) => ({ stream: s, fields: entry(n) }))));
      const a = await run(Effect.flatMap(bus.reader({ stream: s, group: "tamiyo", consumer: "a", count: 2, blockMs: 0 }), (r) => r.read));
      const b = await run(Effect.flatMap(bus.reader({ stream: s, group: "tamiyo", consumer: "b", blockMs: 0 }), (r) => r.read));
      expect(seqs(a)).toEqual(["1", "2"]);
      expect(seqs(b)).toEqual(["3", "4"]);
      const other = await run(Effect.flatMap(bus.reader({ stream: s, group: "replica", consumer: "x", blockMs: 0 }), (r) => r.read));
      expect(seqs(other)).toEqual(["1", "2", "3", "4"]);
    });

    it("a group created at $ starts after what the stream already holds, and ensureGroup never resets it", async () => {
      const s = h.key("control.layer.{L3}");
      await run(bus.publish(s, entry(1)));
      await run(bus.ensureGroup(s, "g", "$"));
      await run(bus.publish(s, entry(2)));
      await run(bus.ensureGroup(s, "g", "0"));
      const got = await run(Effect.flatMap(bus.reader({ stream: s, group: "g", consumer: "c", blockMs: 0 }), (r) => r.read));
      expect(seqs(got)).toEqual(["2"]);
    });

    it("a consumer that restarts reads back what it held pending, then new entries", async () => {
      const s = h.key("control.layer.{L4}");
      await run(bus.ensureGroup(s, "kasmina", "0"));
      await run(bus.publishMany([1, 2, 3].map((n) => ({ stream: s, fields: entry(n) }))));
      const first = await openReader(bus, { stream: s, group: "kasmina", consumer: "w1", blockMs: 0 });
      const held = await first.read();
      await run(bus.ack(s, "kasmina", [held[0]!.id]));
      await first.close(); // crashed before acking 2 and 3
      await run(bus.publish(s, entry(4)));

      const other = await openReader(bus, { stream: s, group: "kasmina", consumer: "w2", count: 1, blockMs: 0 });
      expect(seqs(await other.read())).toEqual(["4"]);
      await run(bus.publish(s, entry(5)));

      const again = await openReader(bus, { stream: s, group: "kasmina", consumer: "w1", blockMs: 0 });
      const drained = await again.read();
      expect(seqs(drained)).toEqual(["2", "3"]);
      expect(drained.map((e) => e.deliveries)).toEqual([2, 2]);
      expect(dataOf(drained[0]!.fields)).toEqual([0, 255, 2, 10, 13]);
      expect(seqs(await again.read())).toEqual(["5"]);
      expect(await again.read()).toEqual([]);
      await again.close();
      await other.close();
    });

    it("another consumer claims what a dead consumer left, once it has been idle long enough", async () => {
      const s = h.key("control.layer.{L5}");
      await run(bus.ensureGroup(s, "kasmina", "0"));
      await run(bus.publishMany([1, 2].map((n) => ({ stream: s, fields: entry(n) }))));
      await run(Effect.flatMap(bus.reader({ stream: s, group: "kasmina", consumer: "dead", blockMs: 0 }), (r) => r.read));
      expect(await run(bus.claimIdle(s, "kasmina", "live", h.idleMs))).toEqual([]);
      await h.letIdle(h.idleMs + 20);
      const claimed = await run(bus.claimIdle(s, "kasmina", "live", h.idleMs));
      expect(seqs(claimed)).toEqual(["1", "2"]);
      expect(claimed.map((e) => e.deliveries)).toEqual([2, 2]);
      expect(dataOf(claimed[1]!.fields)).toEqual([0, 255, 2, 10, 13]);
      const pending = await run(bus.pending(s, "kasmina"));
      expect(pending.map((p) => [p.consumer, p.deliveries])).toEqual([["live", 2], ["live", 2]]);
      expect(pending.every((p) => p.idleMs < h.idleMs)).toBe(true);
      expect(await run(bus.claimIdle(s, "kasmina", "other", h.idleMs))).toEqual([]);
    });

    it("pending entries trimmed away leave the pending list when claimed or read back", async () => {
      const s = h.key("control.layer.{L5b}");
      await run(bus.ensureGroup(s, "kasmina", "0"));
      await run(bus.publishMany([1, 2, 3, 4].map((n) => ({ stream: s, fields: entry(n) }))));
      const dead = await openReader(bus, { stream: s, group: "kasmina", consumer: "dead", count: 2, blockMs: 0 });
      const restarting = await openReader(bus, { stream: s, group: "kasmina", consumer: "w", count: 2, blockMs: 0 });
      expect(seqs(await dead.read())).toEqual(["1", "2"]);
      expect(seqs(await restarting.read())).toEqual(["3", "4"]);
      await restarting.close();
      expect(await run(bus.trim(s, 0))).toBe(4);
      await run(bus.publish(s, entry(5)));

      const again = await openReader(bus, { stream: s, group: "kasmina", consumer: "w", blockMs: 0 });
      const [fifth] = await again.read();
      expect(fifth!.fields.seq).toBe("5");
      expect((await run(bus.pending(s, "kasmina"))).map((p) => p.consumer)).toEqual(["dead", "dead", "w"]);
      await h.letIdle(h.idleMs + 20);
      expect(seqs(await run(bus.claimIdle(s, "kasmina", "live", h.idleMs)))).toEqual(["5"]);
      expect((await run(bus.pending(s, "kasmina"))).map((p) => [p.id, p.consumer])).toEqual([[fifth!.id, "live"]]);
      await again.close();
      await dead.close();
    });

    it("the janitor hands idle entries back, then dead-letters one past its max deliveries", async () => {
      const s = h.key("control.layer.{L6}");
      const dlq = h.key("dlq.layer.{L6}");
      const options = { stream: s, group: "kasmina", consumer: "janitor", dlq, idleMs: h.idleMs, maxDeliveries: 2 };
      await run(bus.ensureGroup(s, "kasmina", "0"));
      await run(bus.publish(s, entry(7)));
      await run(Effect.flatMap(bus.reader({ stream: s, group: "kasmina", consumer: "w1", blockMs: 0 }), (r) => r.read));

      await h.letIdle(h.idleMs + 20);
      const second = await run(sweep(bus, options));
      expect(second.claimed.map((e) => e.deliveries)).toEqual([2]);
      expect(second.deadLettered).toEqual([]);

      await h.letIdle(h.idleMs + 20);
      const before = h.now();
      const third = await run(sweep(bus, options));
      expect(third.claimed).toEqual([]);
      expect(third.deadLettered.map((e) => [e.fields.seq, e.deliveries])).toEqual([["7", 3]]);
      expect(await run(bus.pending(s, "kasmina"))).toEqual([]);

      const [letter] = await run(bus.range(dlq));
      expect(letter!.fields).toMatchObject({ type: "LifecycleTransitionCommand", seq: "7", stream: s, id: third.deadLettered[0]!.id });
      expect(letter!.fields).toMatchObject({ code: "internal", error: maxDeliveriesError(2), deliveries: "3" });
      expect(dataOf(letter!.fields)).toEqual([0, 255, 7, 10, 13]);
      expect(Number(letter!.fields.failed_at)).toBeGreaterThanOrEqual(before - 60_000);
    });

    it("deadLetter appends the entry with its reason and acks it", async () => {
      const s = h.key("control.layer.{L7}");
      const dlq = h.key("dlq.layer.{L7}");
      await run(bus.ensureGroup(s, "kasmina", "0"));
      await run(bus.publish(s, entry(1)));
      const [got] = await run(Effect.flatMap(bus.reader({ stream: s, group: "kasmina", consumer: "w", blockMs: 0 }), (r) => r.read));
      const before = h.now();
      const id = await run(bus.deadLetter({ dlq, entry: got!, group: "kasmina", code: "invalid_message", error: "bad schema" }));
      expect(await run(bus.pending(s, "kasmina"))).toEqual([]);
      const [letter] = await run(bus.range(dlq));
      expect(letter!.id).toBe(id);
      expect(Object.keys(letter!.fields).sort()).toEqual(
        ["code", "data", "deliveries", "error", "failed_at", "id", "seq", "stream", "type"].sort(),
      );
      expect(letter!.fields).toMatchObject({ stream: s, id: got!.id, code: "invalid_message", error: "bad schema", deliveries: "1" });
      const failedAt = Number(letter!.fields.failed_at);
      expect(Number.isInteger(failedAt) && Math.abs(failedAt - before) < 60_000).toBe(true);
    });

    it("a dead letter keeps original fields named like its own (stream, id, code...) and a replay restores them all", async () => {
      const s = h.key("control.layer.{L30}");
      const dlq = h.key("dlq.layer.{L30}");
      await run(bus.ensureGroup(s, "kasmina", "0"));
      const original = entry(9, { stream: "mine", id: "also mine", code: "c", error: "e", deliveries: "d", failed_at: "f", "orig:x": "escaped twice" });
      await run(bus.publish(s, original));
      const [got] = await run(Effect.flatMap(bus.reader({ stream: s, group: "kasmina", consumer: "w", blockMs: 0 }), (r) => r.read));
      await run(bus.deadLetter({ dlq, entry: got!, group: "kasmina", code: "invalid_message", error: "bad schema" }));
      const [letter] = await run(listDeadLetters(bus, dlq));
      expect(letter).toMatchObject({ stream: s, id: got!.id, code: "invalid_message", error: "bad schema", deliveries: 1 });
      expect(letter!.fields).toMatchObject({ stream: "mine", id: "also mine", code: "c", error: "e", deliveries: "d", failed_at: "f", "orig:x": "escaped twice", seq: "9" });
      await run(replayDeadLetter(bus, dlq, letter!.dlqId));
      const [replayed] = await run(bus.range(s, `(${got!.id}`));
      expect(Object.keys(replayed!.fields).sort()).toEqual(Object.keys(original).sort());
      expect(replayed!.fields).toMatchObject({ stream: "mine", id: "also mine", code: "c", "orig:x": "escaped twice" });
      expect(dataOf(replayed!.fields)).toEqual(dataOf(original));
    });

    it("the deadletter op copies the entry where it lies, so the caller need not hold its fields", async () => {
      const s = h.key("control.layer.{L31}");
      const dlq = h.key("dlq.layer.{L31}");
      await run(bus.ensureGroup(s, "kasmina", "0"));
      const id = await run(bus.publish(s, entry(4)));
      await run(Effect.flatMap(bus.reader({ stream: s, group: "kasmina", consumer: "w", blockMs: 0 }), (r) => r.read));
      const [letterId] = await run(
        bus.commit([{ op: "deadletter", dlq, stream: s, group: "kasmina", id, code: "too_large", error: "over the limit", deliveries: 2, failedAt: 1234 }]),
      );
      const [letter] = await run(listDeadLetters(bus, dlq));
      expect(letter).toMatchObject({ dlqId: letterId, stream: s, id, code: "too_large", deliveries: 2, failedAt: 1234 });
      expect(dataOf(letter!.fields)).toEqual([0, 255, 4, 10, 13]);
      expect(await run(bus.pending(s, "kasmina"))).toEqual([]);
      // Gone before it was lettered (trimmed): the letter still says what happened, with nothing to replay.
      await run(bus.commit([{ op: "deadletter", dlq, stream: s, group: "kasmina", id: "1-1", code: "internal", error: "gone", deliveries: 1, failedAt: 1 }]));
      const letters = await run(listDeadLetters(bus, dlq));
      expect(letters[1]).toMatchObject({ id: "1-1", code: "internal" });
      expect(letters[1]!.fields.data).toBeUndefined();
      expect((await failure(replayDeadLetter(bus, dlq, letters[1]!.dlqId))).message).toMatch(/nothing to replay/);
    });

    it("an entry over the reader's maxEntryBytes comes back as a stub with its size; smaller ones whole", async () => {
      const s = h.key("control.layer.{L32}");
      await run(bus.ensureGroup(s, "kasmina", "0"));
      await run(bus.publish(s, entry(1)));
      await run(bus.publish(s, entry(2, { junk: "x".repeat(10_000) })));
      await run(bus.publish(s, entry(3)));
      const r = await openReader(bus, { stream: s, group: "kasmina", consumer: "w", blockMs: 0, maxEntryBytes: 1_000 });
      const got = await r.read();
      expect(got.map((e) => e.fields.seq)).toEqual(["1", undefined, "3"]);
      expect(got[1]!.oversize).toBeGreaterThan(10_000);
      expect(got[1]!.fields.type).toBe("LifecycleTransitionCommand");
      expect(got[1]!.fields.data.byteLength).toBe(0);
      expect(got[0]!.oversize).toBeUndefined();
      // Claimed and read back, the stub stays a stub.
      await h.letIdle(h.idleMs + 20);
      const claimed = await run(bus.claimIdle(s, "kasmina", "other", h.idleMs, 10, 1_000));
      expect(claimed.map((e) => [e.fields.seq, e.oversize !== undefined, e.deliveries])).toEqual([
        ["1", false, 2],
        [undefined, true, 2],
        ["3", false, 2],
      ]);
      await r.close();
    });

    it("an entry of many small fields (200 pairs) under maxEntryBytes comes whole: only its size makes a stub", async () => {
      const s = h.key("control.layer.{L70}");
      await run(bus.ensureGroup(s, "kasmina", "0"));
      const extra: Record<string, string> = {};
      for (let i = 0; i < 199; i++) extra[`f${i}`] = "v";
      await run(bus.publish(s, entry(1, extra)));
      const r = await openReader(bus, { stream: s, group: "kasmina", consumer: "w", blockMs: 0, maxEntryBytes: 10_000 });
      const [got] = await r.read();
      expect(got!.oversize).toBeUndefined();
      expect(got!.fields.seq).toBe("1");
      expect(Object.keys(got!.fields).length).toBeGreaterThanOrEqual(200);
      await h.letIdle(h.idleMs + 20);
      const [claimed] = await run(bus.claimIdle(s, "kasmina", "other", h.idleMs, 10, 10_000));
      expect(claimed!.oversize).toBeUndefined();
      const scanned = await run(bus.scanFor(s, "0-0", "LifecycleTransitionCommand", 10, 10_000));
      expect(scanned.found[0]!.oversize).toBeUndefined();
      await r.close();
    });

    it("a read hands over at most about maxBatchBytes: it stops at the entry that passes the budget, and the rest come next", async () => {
      const s = h.key("control.layer.{L39}");
      await run(bus.ensureGroup(s, "kasmina", "0"));
      for (let n = 1; n <= 6; n++) await run(bus.publish(s, entry(n, { pad: "p".repeat(3_000) })));
      const r = await openReader(bus, { stream: s, group: "kasmina", consumer: "w", blockMs: 0, maxBatchBytes: 7_000 });
      expect(seqs(await r.read())).toEqual(["1", "2", "3"]);
      expect(seqs(await r.read())).toEqual(["4", "5", "6"]);
      expect(await r.read()).toEqual([]);
      // Read back after a restart, the pending entries come under the same budget.
      const again = await openReader(bus, { stream: s, group: "kasmina", consumer: "w", blockMs: 0, maxBatchBytes: 4_000 });
      expect(seqs(await again.read())).toEqual(["1", "2"]);
      expect(seqs(await again.read())).toEqual(["3", "4"]);
      await r.close();
      await again.close();
    });

    it("an expect precondition passes on the value held (or its absence) and fails the commit as a conflict naming the key", async () => {
      const meta = h.key("meta.layer.{L33}");
      const s = h.key("event.layer.{L33}");
      await run(bus.commit([{ op: "expect", key: meta, field: "generation", value: null }, { op: "hset", key: meta, values: { generation: "g1" } }]));
      await run(bus.commit([{ op: "expect", key: meta, field: "generation", value: "g1" }, { op: "xadd", stream: s, fields: entry(1) }]));
      const lost = await failure(bus.commit([{ op: "expect", key: meta, field: "generation", value: "g2" }, { op: "xadd", stream: s, fields: entry(2) }]));
      expect(lost.reason).toBe("conflict");
      expect(lost.key).toBe(meta);
      const missing = await failure(bus.commit([{ op: "expect", key: meta, field: "generation", value: null }, { op: "xadd", stream: s, fields: entry(3) }]));
      expect(missing.reason).toBe("conflict");
      expect(await run(bus.length(s))).toBe(1);
    });

    it("groupInfo tells a group's last delivered id and pending count; undefined for a missing stream or group", async () => {
      const s = h.key("control.layer.{L34}");
      expect(await run(bus.groupInfo(s, "kasmina"))).toBeUndefined();
      await run(bus.ensureGroup(s, "kasmina", "0"));
      expect(await run(bus.groupInfo(s, "kasmina"))).toEqual({ lastDeliveredId: "0-0", pending: 0 });
      expect(await run(bus.groupInfo(s, "other"))).toBeUndefined();
      const ids = await run(bus.publishMany([1, 2, 3].map((n) => ({ stream: s, fields: entry(n) }))));
      await run(Effect.flatMap(bus.reader({ stream: s, group: "kasmina", consumer: "w", blockMs: 0, count: 2 }), (r) => r.read));
      expect(await run(bus.groupInfo(s, "kasmina"))).toEqual({ lastDeliveredId: ids[1], pending: 2 });
      await run(bus.ensureGroup(s, "late", "$"));
      expect(await run(bus.groupInfo(s, "late"))).toEqual({ lastDeliveredId: ids[2], pending: 0 });
    });

    it("takeOver gives one consumer every pending entry of the group, without counting a delivery", async () => {
      const s = h.key("control.layer.{L37}");
      await run(bus.ensureGroup(s, "kasmina", "0"));
      await run(bus.publishMany([1, 2, 3, 4].map((n) => ({ stream: s, fields: entry(n) }))));
      await run(Effect.flatMap(bus.reader({ stream: s, group: "kasmina", consumer: "old-1", blockMs: 0, count: 2 }), (r) => r.read));
      await run(Effect.flatMap(bus.reader({ stream: s, group: "kasmina", consumer: "old-2", blockMs: 0, count: 1 }), (r) => r.read));
      expect(await run(bus.takeOver(s, "kasmina", "new"))).toBe(3);
      const pending = await run(bus.pending(s, "kasmina"));
      expect(pending.map((p) => [p.consumer, p.deliveries])).toEqual([
        ["new", 1],
        ["new", 1],
        ["new", 1],
      ]);
      // The new consumer reads them back first, in order, then what was never delivered.
      const r = await openReader(bus, { stream: s, group: "kasmina", consumer: "new", blockMs: 0 });
      expect(seqs(await r.read())).toEqual(["1", "2", "3"]);
      expect(seqs(await r.read())).toEqual(["4"]);
      expect(await run(bus.takeOver(s, "kasmina", "new"))).toBe(0);
      await r.close();
    });

    it("scanFor returns only entries of one type after an id, and how far it looked", async () => {
      const s = h.key("control.layer.{L38}");
      const ids = await run(
        bus.publishMany(
          [1, 2, 3, 4, 5].map((n) => ({ stream: s, fields: entry(n, n % 2 === 0 ? { type: "EmergencyStopCommand" } : {}) })),
        ),
      );
      const first = await run(bus.scanFor(s, ids[0]!, "EmergencyStopCommand", 3));
      expect(first.lastId).toBe(ids[3]);
      expect(first.found.map((e) => [e.id, e.fields.seq])).toEqual([
        [ids[1], "2"],
        [ids[3], "4"],
      ]);
      const rest = await run(bus.scanFor(s, first.lastId, "EmergencyStopCommand", 3));
      expect(rest).toEqual({ lastId: ids[4], found: [] });
      expect(await run(bus.scanFor(s, ids[4]!, "EmergencyStopCommand", 3))).toEqual({ lastId: ids[4], found: [] });
      await run(bus.publish(s, entry(6, { type: "EmergencyStopCommand", junk: "x".repeat(5_000) })));
      const big = await run(bus.scanFor(s, ids[4]!, "EmergencyStopCommand", 10, 1_000));
      expect(big.found[0]!.oversize).toBeGreaterThan(5_000);
    });

    it("a reader told not to recreate its group fails with NOGROUP when the group vanished", async () => {
      const s = h.key("control.layer.{L35}");
      await run(bus.publish(s, entry(1)));
      const r = await openReader(bus, { stream: s, group: "kasmina", consumer: "w", blockMs: 0, recreateGroup: false });
      expect(seqs(await r.read())).toEqual(["1"]);
      await run(bus.del([s]));
      await run(bus.publish(s, entry(2)));
      const error = await Effect.runPromise(provided(Effect.flip(r.reader.read)));
      expect(error.message).toMatch(/NOGROUP/);
      await r.close();
    });

    it("lists dead letters by original stream, and replay appends the original fields and removes the letter", async () => {
      const s1 = h.key("control.layer.{L8}");
      const s2 = h.key("event.layer.{L8}");
      const dlq = h.key("dlq.layer.{L8}");
      for (const s of [s1, s2]) {
        await run(bus.ensureGroup(s, "g", "0"));
        await run(bus.publish(s, entry(s === s1 ? 1 : 2)));
        const [got] = await run(Effect.flatMap(bus.reader({ stream: s, group: "g", consumer: "c", blockMs: 0 }), (r) => r.read));
        await run(bus.deadLetter({ dlq, entry: got!, group: "g", code: "internal", error: "boom" }));
      }
      expect((await run(listDeadLetters(bus, dlq))).map((l) => l.stream)).toEqual([s1, s2]);
      const [letter, ...rest] = await run(listDeadLetters(bus, dlq, { stream: s1 }));
      expect(rest).toEqual([]);
      expect(letter!).toMatchObject({ stream: s1, code: "internal", error: "boom", deliveries: 1 });
      expect(Object.keys(letter!.fields).sort()).toEqual(["data", "seq", "type"]);

      const replayed = await run(replayDeadLetter(bus, dlq, letter!.dlqId));
      const again = await run(Effect.flatMap(bus.reader({ stream: s1, group: "g", consumer: "c", blockMs: 0 }), (r) => r.read));
      expect(again.map((e) => e.id)).toEqual([replayed]);
      expect(Object.keys(again[0]!.fields).sort()).toEqual(["data", "seq", "type"]);
      expect(dataOf(again[0]!.fields)).toEqual([0, 255, 1, 10, 13]);
      expect((await run(listDeadLetters(bus, dlq))).map((l) => l.stream)).toEqual([s2]);
      expect((await failure(replayDeadLetter(bus, dlq, letter!.dlqId))).reason).toBe("command_failed");
    });

    it("publishMany appends in order across streams and returns the ids in order", async () => {
      const a = h.key("telemetry.layer.{L9}");
      const b = h.key("event.layer.{L9}");
      const ids = await run(
        bus.publishMany([
          { stream: a, fields: entry(1) },
          { stream: b, fields: entry(2) },
          { stream: a, fields: entry(3) },
          { stream: a, fields: entry(4) },
        ]),
      );
      const inA = await run(bus.range(a));
      expect(inA.map((e) => e.id)).toEqual([ids[0], ids[2], ids[3]]);
      expect(seqs(inA)).toEqual(["1", "3", "4"]);
      expect((await run(bus.range(b))).map((e) => e.id)).toEqual([ids[1]]);
      expect(inA.every((e) => e.deliveries === 0)).toBe(true);
    });

    it("range reads inclusive or exclusive bounds and honours count", async () => {
      const s = h.key("event.layer.{L10}");
      const ids = await run(bus.publishMany([1, 2, 3, 4, 5].map((n) => ({ stream: s, fields: entry(n) }))));
      expect(seqs(await run(bus.range(s, ids[1], ids[3])))).toEqual(["2", "3", "4"]);
      expect(seqs(await run(bus.range(s, `(${ids[1]}`, "+")))).toEqual(["3", "4", "5"]);
      expect(seqs(await run(bus.range(s, "-", "+", 2)))).toEqual(["1", "2"]);
      expect(await run(bus.range(h.key("missing"), "-", "+"))).toEqual([]);
      expect(await run(bus.length(s))).toBe(5);
      expect((await failure(bus.range(s, "not-an-id", "+"))).reason).toBe("command_failed");
    });

    it("readAfter returns what follows an id, and waits for the next entry when asked to", async () => {
      const s = h.key("event.layer.{L11}");
      const ids = await run(bus.publishMany([1, 2, 3, 4].map((n) => ({ stream: s, fields: entry(n) }))));
      expect(seqs(await run(bus.readAfter(s, ids[1]!)))).toEqual(["3", "4"]);
      expect(seqs(await run(bus.readAfter(s, "0", 2)))).toEqual(["1", "2"]);
      expect(await run(bus.readAfter(s, ids[3]!, 10, 0))).toEqual([]);
      let woke: readonly Entry[] | undefined;
      const waiting = run(bus.readAfter(s, ids[3]!, 10, 60_000)).then((got) => (woke = got));
      const id5 = await run(bus.publish(s, entry(5)));
      await waiting;
      expect(woke!.map((e) => e.id)).toEqual([id5]);
    });

    it("a blocked group read wakes when an entry is published, and returns nothing after its block time", async () => {
      const s = h.key("control.layer.{L12}");
      await run(bus.ensureGroup(s, "kasmina", "$"));
      // A block far longer than the test: only the publish can end this read.
      const r = await openReader(bus, { stream: s, group: "kasmina", consumer: "w", blockMs: 600_000 });
      const waiting = r.read();
      await run(bus.publish(s, entry(1)));
      expect(seqs(await waiting)).toEqual(["1"]);
      await r.close();

      const quiet = await openReader(bus, { stream: s, group: "kasmina", consumer: "q", blockMs: 200 });
      let answered: readonly Entry[] | undefined;
      const reading = quiet.read().then((got) => (answered = got));
      await h.letIdle(250);
      await reading;
      expect(answered).toEqual([]);
      await quiet.close();
    });

    it("publish trims with MAXLEN ~ keeping the newest entries, and trim cuts exactly", async () => {
      const s = h.key("telemetry.layer.{L13}");
      const ids: string[] = [];
      for (let batch = 0; batch < 6; batch++) {
        ids.push(...(await run(bus.publishMany(Array.from({ length: 50 }, (_, i) => ({ stream: s, fields: entry(batch * 50 + i) })), 50))));
      }
      const kept = await run(bus.length(s));
      expect(kept).toBeGreaterThanOrEqual(50);
      expect(kept).toBeLessThan(300);
      const all = await run(bus.range(s));
      expect(all.map((e) => e.id)).toEqual(ids.slice(ids.length - kept));

      expect(await run(bus.trim(s, 10))).toBe(kept - 10);
      expect((await run(bus.range(s))).map((e) => e.id)).toEqual(ids.slice(-10));
    });

    it("commit applies every op together and returns the appended ids", async () => {
      const s = h.key("control.layer.{L14}");
      const events = h.key("event.layer.{L14}");
      const state = h.key("state.layer.{L14}");
      await run(bus.ensureGroup(s, "kasmina", "0"));
      await run(bus.publish(s, entry(1)));
      const [cmd] = await run(Effect.flatMap(bus.reader({ stream: s, group: "kasmina", consumer: "w", blockMs: 0 }), (r) => r.read));
      const ids = await run(
        bus.commit([
          { op: "hset", key: state, values: { "3": bytes(9, 0, 9), note: "text" } },
          { op: "xadd", stream: events, fields: entry(10) },
          { op: "xadd", stream: events, fields: entry(11) },
          { op: "ack", stream: s, group: "kasmina", ids: [cmd!.id] },
        ]),
      );
      expect((await run(bus.range(events))).map((e) => e.id)).toEqual(ids);
      const hash = await run(bus.hgetall(state));
      expect(Array.from(hash["3"]!)).toEqual([9, 0, 9]);
      expect(Buffer.from(hash.note!).toString()).toBe("text");
      expect(await run(bus.pending(s, "kasmina"))).toEqual([]);
    });

    it("a commit with an op that fails leaves nothing applied", async () => {
      const s = h.key("control.layer.{L15}");
      const events = h.key("event.layer.{L15}");
      const state = h.key("state.layer.{L15}");
      const hash = h.key("hash.{L15}");
      await run(bus.commit([{ op: "hset", key: hash, values: { a: "1" } }]));
      await run(bus.ensureGroup(s, "kasmina", "0"));
      await run(bus.publish(s, entry(1)));
      const [cmd] = await run(Effect.flatMap(bus.reader({ stream: s, group: "kasmina", consumer: "w", blockMs: 0 }), (r) => r.read));
      const applied = [
        { op: "xadd", stream: events, fields: entry(2) },
        { op: "hset", key: state, values: { "0": "snapshot" } },
        { op: "ack", stream: s, group: "kasmina", ids: [cmd!.id] },
      ] as const;

      const wrongType = await failure(bus.commit([...applied, { op: "xadd", stream: hash, fields: entry(3) }]));
      expect(wrongType.reason).toBe("command_failed");
      expect(wrongType.message).toContain("WRONGTYPE");
      const badId = await failure(bus.commit([...applied, { op: "ack", stream: s, group: "kasmina", ids: ["nope"] }]));
      expect(badId.reason).toBe("command_failed");

      expect(await run(bus.length(events))).toBe(0);
      expect(await run(bus.hgetall(state))).toEqual({});
      expect((await run(bus.pending(s, "kasmina"))).map((p) => p.id)).toEqual([cmd!.id]);
      expect(Object.keys(await run(bus.hgetall(hash)))).toEqual(["a"]);
    });

    it("an absent precondition that finds a field present fails the commit as a conflict and writes nothing", async () => {
      const s = h.key("control.layer.{L20}");
      const events = h.key("event.layer.{L20}");
      const results = h.key("results.layer.{L20}");
      await run(bus.commit([{ op: "hset", key: results, values: { m1: "first answer" } }]));
      await run(bus.ensureGroup(s, "kasmina", "0"));
      await run(bus.publish(s, entry(1)));
      const [cmd] = await run(Effect.flatMap(bus.reader({ stream: s, group: "kasmina", consumer: "w", blockMs: 0 }), (r) => r.read));
      const writes = [
        { op: "xadd", stream: events, fields: entry(2) },
        { op: "hset", key: results, values: { m2: "second", m1: "overwritten" } },
        { op: "ack", stream: s, group: "kasmina", ids: [cmd!.id] },
      ] as const;

      const conflict = await failure(bus.commit([{ op: "absent", key: results, fields: ["m2", "m1"] }, ...writes]));
      expect(conflict.reason).toBe("conflict");
      expect(conflict.message).toContain("m1");
      expect(conflict.message).not.toContain("m2");
      expect(await run(bus.length(events))).toBe(0);
      expect(Object.keys(await run(bus.hgetall(results)))).toEqual(["m1"]);
      expect((await run(bus.pending(s, "kasmina"))).map((p) => p.id)).toEqual([cmd!.id]);

      // Fields that are absent (on a hash that exists, and on one that does not) let it through.
      await run(bus.commit([{ op: "absent", key: results, fields: ["m2", "m3"] }, { op: "absent", key: h.key("none.{L20}"), fields: ["x"] }, ...writes]));
      expect(await run(bus.length(events))).toBe(1);
      expect(Buffer.from((await run(bus.hmget(results, ["m1"])))[0]!).toString()).toBe("overwritten");
      expect(await run(bus.pending(s, "kasmina"))).toEqual([]);
    });

    it("rotate moves a hash that reached its field count to the other key, replacing it, and leaves a smaller one alone", async () => {
      const now = h.key("results.layer.{L22}");
      const old = h.key("results_old.layer.{L22}");
      await run(bus.commit([{ op: "hset", key: old, values: { stale: "x" } }, { op: "hset", key: now, values: { a: "1", b: "2" } }]));
      await run(bus.commit([{ op: "rotate", key: now, to: old, atFields: 3 }, { op: "hset", key: now, values: { c: "3" } }]));
      expect(Object.keys(await run(bus.hgetall(now))).sort()).toEqual(["a", "b", "c"]);
      expect(Object.keys(await run(bus.hgetall(old)))).toEqual(["stale"]);
      await run(bus.commit([{ op: "rotate", key: now, to: old, atFields: 3 }, { op: "hset", key: now, values: { d: "4" } }]));
      expect(Object.keys(await run(bus.hgetall(now)))).toEqual(["d"]);
      expect(Object.keys(await run(bus.hgetall(old))).sort()).toEqual(["a", "b", "c"]);
      // A `to` that is not a hash refuses the whole commit.
      const s = h.key("event.layer.{L22}");
      await run(bus.publish(s, entry(1)));
      const refused = await failure(bus.commit([{ op: "hset", key: now, values: { e: "5" } }, { op: "rotate", key: now, to: s, atFields: 1 }]));
      expect(refused.reason).toBe("command_failed");
      expect(Object.keys(await run(bus.hgetall(now)))).toEqual(["d"]);
    });

    it("hset takes a Map and deferred values, and hands deferred values back as the bytes they encode", async () => {
      const state = h.key("state.layer.{L21}");
      let encoded = 0;
      const deferred = (...values: number[]) => ({ encode: () => (encoded++, bytes(...values)) });
      await run(bus.commit([{ op: "hset", key: state, values: new Map<string, Uint8Array | string | { encode: () => Uint8Array }>([["0", deferred(1, 2)], ["1", "one"], ["2", deferred(3)]]) }]));
      expect((await run(bus.hmget(state, ["0"]))).map((v) => Array.from(v!))).toEqual([[1, 2]]);
      const all = await run(bus.hgetall(state));
      expect(Object.fromEntries(Object.entries(all).map(([k, v]) => [k, Array.from(v)]))).toEqual({ "0": [1, 2], "1": [111, 110, 101], "2": [3] });
      // Each value is encoded once at most, whenever the bus needs its bytes.
      await run(bus.hgetall(state));
      expect(encoded).toBe(2);
    });

    // A whole-layer command on a big layer writes one field per seed in one commit; Lua unpacks at most ~8000 values per call.
    it("a commit with 10,000 hash fields and thousands of ids to ack and delete lands whole", async () => {
      const state = h.key("state.layer.{L23}");
      const s = h.key("control.layer.{L23}");
      await run(bus.ensureGroup(s, "kasmina", "0"));
      const values: Record<string, string> = {};
      for (let i = 0; i < 10_000; i++) values[String(i)] = `v${i}`;
      const ids = Array.from({ length: 5_000 }, (_, i) => `1-${i}`);
      await run(bus.commit([{ op: "hset", key: state, values }, { op: "ack", stream: s, group: "kasmina", ids }, { op: "xdel", stream: s, ids }]));
      const back = await run(bus.hgetall(state));
      expect(Object.keys(back)).toHaveLength(10_000);
      expect(Buffer.from(back["9999"]!).toString()).toBe("v9999");
    });

    // Regression: a read batch that moved ~10,000 seeds made a commit of ~125,000 arguments, which
    // ioredis could not even build (a RangeError, taken for an outage and retried forever).
    it("a commit of over a million arguments (every seed of a 100,000-seed layer moved) lands whole", async () => {
      const state = h.key("state.layer.{L36}");
      const events = h.key("event.layer.{L36}");
      const values = new Map<string, string>();
      for (let i = 0; i < 100_000; i++) values.set(String(i), `snapshot ${i}`);
      const xadds = Array.from({ length: 100_000 }, (_, i) => ({ op: "xadd" as const, stream: events, fields: entry(i % 250) }));
      const ids = await run(bus.commit([{ op: "hset", key: state, values }, ...xadds]));
      expect(ids).toHaveLength(100_000);
      expect(await run(bus.length(events))).toBe(100_000);
      expect(Object.keys(await run(bus.hgetall(state)))).toHaveLength(100_000);
    }, 120_000);

    it("trimDelivered removes what every group is done with and keeps pending and unread entries", async () => {
      const s = h.key("control.all.{L24}");
      await run(bus.ensureGroup(s, "a", "0"));
      await run(bus.ensureGroup(s, "b", "0"));
      const ids = await run(bus.publishMany([1, 2, 3, 4, 5, 6].map((n) => ({ stream: s, fields: entry(n) })), null));
      const readAll = (group: string, count: number) =>
        run(Effect.flatMap(bus.reader({ stream: s, group, consumer: "c", count, blockMs: 0 }), (r) => r.read));
      // Group a: read 1-4, acked 1, 2 and 4 (3 still pending). Group b: read and acked 1-5 (6 unread).
      const a = await readAll("a", 4);
      await run(bus.ack(s, "a", [a[0]!.id, a[1]!.id, a[3]!.id]));
      const b = await readAll("b", 5);
      await run(bus.ack(s, "b", b.map((e) => e.id)));
      // The oldest entry some group still needs is 3 (pending in a): 1 and 2 go.
      expect(await run(bus.trimDelivered(s))).toBe(2);
      expect(seqs(await run(bus.range(s)))).toEqual(["3", "4", "5", "6"]);
      await run(bus.ack(s, "a", [a[2]!.id]));
      // Now a needs 5 (its next unread), b needs 6.
      expect(await run(bus.trimDelivered(s))).toBe(2);
      expect((await run(bus.range(s))).map((e) => e.id)).toEqual(ids.slice(4));
      expect(await run(bus.trimDelivered(h.key("no-such-stream")))).toBe(0);
    });

    it("publish with maxLen null never trims", async () => {
      const s = h.key("control.layer.{L25}");
      for (let n = 1; n <= 5; n++) await run(bus.publish(s, entry(n), null));
      await run(bus.publishMany([6, 7].map((n) => ({ stream: s, fields: entry(n) })), null));
      expect(await run(bus.length(s))).toBe(7);
      await run(bus.trim(s, 3));
      for (let n = 8; n <= 11; n++) await run(bus.publish(s, entry(n), null));
      expect(seqs(await run(bus.range(s)))).toEqual(["5", "6", "7", "8", "9", "10", "11"]);
    });

    it("hmget returns the asked fields of a hash in order, null where missing", async () => {
      const state = h.key("state.layer.{L18}");
      await run(bus.commit([{ op: "hset", key: state, values: { "0": bytes(0, 1), "2": "two" } }]));
      const got = await run(bus.hmget(state, ["2", "1", "0"]));
      expect(got.map((v) => (v === null ? null : Array.from(v)))).toEqual([[116, 119, 111], null, [0, 1]]);
      expect(await run(bus.hmget(h.key("no-hash"), ["a"]))).toEqual([null]);
      expect(await run(bus.hmget(state, []))).toEqual([]);
    });

    it("lastId names the newest entry, so a follower starting there sees only what comes next", async () => {
      const s = h.key("event.layer.{L19}");
      expect(await run(bus.lastId(s))).toBe("0-0");
      const ids = await run(bus.publishMany([1, 2].map((n) => ({ stream: s, fields: entry(n) }))));
      const last = await run(bus.lastId(s));
      expect(last).toBe(ids[1]);
      const id3 = await run(bus.publish(s, entry(3)));
      expect((await run(bus.readAfter(s, last))).map((e) => e.id)).toEqual([id3]);
    });

    it("refuses stream commands on a key holding a hash, and del removes keys", async () => {
      const hash = h.key("hash.{L16}");
      const s = h.key("event.layer.{L16}");
      await run(bus.commit([{ op: "hset", key: hash, values: { a: "1" } }]));
      expect((await failure(bus.publish(hash, entry(1)))).reason).toBe("command_failed");
      expect((await failure(bus.length(hash))).reason).toBe("command_failed");
      await run(bus.publish(s, entry(1)));
      await run(bus.del([hash, s]));
      expect(await run(bus.length(s))).toBe(0);
      expect(await run(bus.hgetall(hash))).toEqual({});
    });

    it("the janitor runs on its schedule in a Scope, handing claimed entries to its handler", async () => {
      const s = h.key("control.layer.{L17}");
      const dlq = h.key("dlq.layer.{L17}");
      await run(bus.ensureGroup(s, "kasmina", "0"));
      await run(bus.publishMany([1, 2].map((n) => ({ stream: s, fields: entry(n) }))));
      await run(Effect.flatMap(bus.reader({ stream: s, group: "kasmina", consumer: "dead", blockMs: 0 }), (r) => r.read));
      const handled: Entry[] = [];
      const scope = await Effect.runPromise(Scope.make());
      await Effect.runPromise(
        provided(Scope.provide(scope)(
          runJanitor(bus, {
            stream: s,
            group: "kasmina",
            consumer: "live",
            dlq,
            idleMs: h.idleMs,
            every: Schedule.spaced("10 millis"),
            handle: (entries) =>
              Effect.flatMap(bus.ack(s, "kasmina", entries.map((e) => e.id)), () =>
                Effect.sync(() => {
                  handled.push(...entries);
                }),
              ),
          }),
        )),
      );
      await h.letIdle(h.idleMs + 20);
      // The janitor sweeps every 10 ms of the bus's clock: move it on until it has.
      for (let sweeps = 0; handled.length < 2 && sweeps < 300; sweeps++) await h.letIdle(10);
      await Effect.runPromise(Scope.close(scope, Exit.void));
      expect(seqs(handled)).toEqual(["1", "2"]);
      expect(await run(bus.pending(s, "kasmina"))).toEqual([]);
    });

    it("a lease: one holder at a time, renewed by its holder, its token new with every holding, fencing commits, and free again on release or expiry", async () => {
      const key = h.key("lease.layer.{L9}");
      const counter = h.key("fence.layer.{L9}");
      const meta = h.key("meta.layer.{L9}");
      const ask = (holder: string, op: "acquire" | "renew" | "release" = "acquire", ttlMs = 60_000, token?: number) =>
        run(bus.lease({ op, key, counter, holder, ttlMs, ...(token !== undefined ? { token } : {}) }));
      expect(await run(bus.fencingToken(counter))).toBe(0);
      expect(await ask("a")).toEqual({ held: true, holder: "a", token: 1, ttlMs: 60_000 });
      expect(await run(bus.fencingToken(counter))).toBe(1);
      const other = await ask("b");
      expect(other).toMatchObject({ held: false, holder: "a", token: 1 });
      expect(other.ttlMs).toBeGreaterThan(0);
      expect(await ask("a")).toMatchObject({ held: true, holder: "a", token: 1 }); // a renewal keeps the token
      // Fencing: a commit that expects its holding lands while it lasts...
      const fenced = (owner: string) => [
        { op: "expect" as const, key, field: LEASE_OWNER_FIELD, value: owner },
        { op: "hset" as const, key: meta, values: { by: owner } },
      ];
      await run(bus.commit(fenced("a#1")));
      // ...and a release by someone else changes nothing, the holder's own frees it.
      await ask("b", "release");
      expect(await ask("b")).toMatchObject({ held: false, holder: "a" });
      await ask("a", "release");
      expect(await ask("b")).toEqual({ held: true, holder: "b", token: 2, ttlMs: 60_000 });
      // The deposed holder's commit is refused whole, naming the lease.
      const refused = await failure(bus.commit(fenced("a#1")));
      expect(refused).toMatchObject({ reason: "conflict", key });
      expect(new TextDecoder().decode((await run(bus.hmget(meta, ["by"])))[0]!)).toBe("a#1"); // only the holder's write is there
      // A holding that is not renewed expires, and the next one gets a new token.
      await ask("b", "release");
      expect(await ask("c", "acquire", 50)).toMatchObject({ held: true, holder: "c", token: 3 });
      await h.letIdle(120);
      expect(await run(bus.hgetall(key))).toEqual({}); // an expired lease is gone for readers too
      // A renewal extends only the holding it names: one that ran out is lost, not taken anew.
      expect(await ask("c", "renew", 50, 3)).toMatchObject({ held: false, holder: null });
      expect(await ask("d")).toMatchObject({ held: true, holder: "d", token: 4 });
      expect(await run(bus.fencingToken(counter))).toBe(4); // the newest token issued, whoever holds it now
      expect((await failure(bus.commit(fenced("c#3")))).reason).toBe("conflict");
      expect(await ask("d", "renew", 60_000, 4)).toMatchObject({ held: true, token: 4 });
      expect(await ask("d", "renew", 60_000, 3)).toMatchObject({ held: false, holder: "d" });
    });

    it("resume takes a lapsed holding up again, same token and owner, only when nobody has held the lease since", async () => {
      const key = h.key("lease.layer.{L17}");
      const counter = h.key("fence.layer.{L17}");
      const ask = (holder: string, op: "acquire" | "resume", ttlMs: number, token?: number) => run(bus.lease({ op, key, counter, holder, ttlMs, ...(token !== undefined ? { token } : {}) }));
      expect(await ask("a", "acquire", 50)).toMatchObject({ held: true, token: 1 });
      await h.letIdle(120); // lapsed: nobody holds it
      expect(await ask("a", "resume", 60_000, 1)).toEqual({ held: true, holder: "a", token: 1, ttlMs: 60_000 });
      expect(new TextDecoder().decode((await run(bus.hmget(key, [LEASE_OWNER_FIELD])))[0]!)).toBe("a#1");
      expect(await ask("a", "resume", 50, 1)).toMatchObject({ held: true, token: 1 }); // resuming a live holding renews it
      await h.letIdle(120);
      expect(await ask("b", "acquire", 60_000)).toMatchObject({ held: true, token: 2 }); // someone took it meanwhile
      expect(await ask("a", "resume", 60_000, 1)).toMatchObject({ held: false, holder: "b" });
      expect(await run(bus.fencingToken(counter))).toBe(2);
    });

    it("a fenced reader is handed entries only while its lease names it, checked with the delivery: deposed, it fails conflict and takes nothing", async () => {
      const s = h.key("control.layer.{L16}");
      const key = h.key("lease.layer.{L16}");
      const counter = h.key("fence.layer.{L16}");
      const ask = (holder: string, op: "acquire" | "release" = "acquire", ttlMs = 60_000) => run(bus.lease({ op, key, counter, holder, ttlMs }));
      await run(bus.ensureGroup(s, "kasmina", "0"));
      expect(await ask("a")).toMatchObject({ held: true, token: 1 });
      const a = await openReader(bus, { stream: s, group: "kasmina", consumer: "a", blockMs: 100, maxEntryBytes: 1_000, fence: { key, owner: "a#1" } });
      await run(bus.publish(s, entry(1)));
      expect(seqs(await a.read())).toEqual(["1"]);
      // Waiting for news delivers nothing to the group: what arrives is handed over by the read that checks the lease.
      const waiting = a.read();
      await run(bus.publish(s, entry(2)));
      expect(seqs(await waiting)).toEqual(["2"]);
      // Deposed (released here; an expiry is the same): its next read fails, and the entry stays for the next owner.
      await ask("a", "release");
      expect(await ask("b")).toMatchObject({ held: true, token: 2 });
      await run(bus.publish(s, entry(3)));
      expect(await failure(a.reader.read)).toMatchObject({ reason: "conflict", key });
      expect((await run(bus.pending(s, "kasmina"))).map((p) => p.consumer)).toEqual(["a", "a"]);
      const b = await openReader(bus, { stream: s, group: "kasmina", consumer: "b", blockMs: 0, maxEntryBytes: 1_000, fence: { key, owner: "b#2" } });
      expect(seqs(await b.read())).toEqual(["3"]);
      // A lease that runs out fences as surely: nobody holds it, so nobody reads.
      await ask("b", "release");
      expect(await ask("c", "acquire", 50)).toMatchObject({ held: true, token: 3 });
      const c = await openReader(bus, { stream: s, group: "kasmina", consumer: "c", blockMs: 0, maxEntryBytes: 1_000, fence: { key, owner: "c#3" } });
      await h.letIdle(120);
      await run(bus.publish(s, entry(4)));
      expect(await failure(c.reader.read)).toMatchObject({ reason: "conflict", key });
      await Promise.all([a.close(), b.close(), c.close()]);
    });

    it("streamInfo: every entry ever appended is counted, trims and deletes or not, with the last id generated", async () => {
      const s = h.key("event.layer.{L10}");
      expect(await run(bus.streamInfo(s))).toEqual({ entriesAdded: 0, lastGeneratedId: "0-0" });
      const ids = [];
      for (let n = 1; n <= 4; n++) ids.push(await run(bus.publish(s, entry(n))));
      expect(await run(bus.streamInfo(s))).toEqual({ entriesAdded: 4, lastGeneratedId: ids[3] });
      await run(bus.trim(s, 1));
      await run(bus.commit([{ op: "xdel", stream: s, ids: [ids[3]!] }]));
      expect(await run(bus.streamInfo(s))).toEqual({ entriesAdded: 4, lastGeneratedId: ids[3] });
      ids.push(await run(bus.publish(s, entry(5))));
      expect(await run(bus.streamInfo(s))).toEqual({ entriesAdded: 5, lastGeneratedId: ids[4] });
    });
  });
};
