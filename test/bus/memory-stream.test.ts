import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryStream } from "../../src/bus/memory-stream.ts";
import { compareStreamIds, MAX_ID, MIN_ID, parseStreamId } from "../../src/bus/stream-id.ts";

/**
 * MemoryStream keeps a moving head, tombstones and periodic compaction to stay O(1) per append
 * and trim; this checks it against the obvious model (a plain array) under random operations,
 * with enough appends to cross the compaction threshold.
 */
type Op =
  | { kind: "append"; clock: number }
  | { kind: "trim"; maxLen: number }
  | { kind: "remove"; pick: number }
  | { kind: "slice"; from: number; to: number; count: number; exclusive: boolean };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant("append" as const), clock: fc.integer({ min: -3, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("trim" as const), maxLen: fc.integer({ min: 0, max: 3000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("remove" as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("slice" as const),
      from: fc.nat(),
      to: fc.nat(),
      count: fc.integer({ min: 1, max: 50 }),
      exclusive: fc.boolean(),
    }),
  },
);

describe("MemoryStream", () => {
  it("behaves like a plain array of entries under appends, trims, deletes and range reads", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(op, fc.integer({ min: 1, max: 40 })), { maxLength: 60 }), (script) => {
        const stream = new MemoryStream<never>("s");
        const model: { id: string; deleted: boolean }[] = [];
        let now = 1_000;
        const live = () => model.filter((e) => !e.deleted);
        for (const [step, repeat] of script) {
          if (step.kind === "append") {
            for (let i = 0; i < repeat * 20; i++) {
              now += step.clock; // the clock may stall or go back: ids must still increase
              const stored = stream.append({ data: new Uint8Array(0), type: "t" }, now);
              const last = model[model.length - 1];
              if (last !== undefined) expect(compareStreamIds(stored, parseStreamId(last.id)!)).toBeGreaterThan(0);
              model.push({ id: stored.first.id, deleted: false });
            }
          } else if (step.kind === "trim") {
            let liveCount = live().length;
            expect(stream.trimTo(step.maxLen)).toBe(Math.max(0, liveCount - step.maxLen));
            while (liveCount > step.maxLen) if (!model.shift()!.deleted) liveCount--;
          } else if (step.kind === "remove") {
            const candidates = live();
            if (candidates.length === 0) continue;
            const target = candidates[step.pick % candidates.length]!;
            expect(stream.remove([parseStreamId(target.id)!])).toBe(1);
            expect(stream.remove([parseStreamId(target.id)!])).toBe(0);
            target.deleted = true;
          } else {
            const ids = live().map((e) => e.id);
            if (ids.length === 0) continue;
            const from = parseStreamId(ids[step.from % ids.length]!)!;
            const to = parseStreamId(ids[step.to % ids.length]!)!;
            const got = stream.slice({ id: from, exclusive: step.exclusive }, { id: to, exclusive: false }, step.count);
            const want = ids
              .filter((id) => {
                const c = compareStreamIds(parseStreamId(id)!, from);
                return (step.exclusive ? c > 0 : c >= 0) && compareStreamIds(parseStreamId(id)!, to) <= 0;
              })
              .slice(0, step.count);
            expect(got.map((s) => s.first.id)).toEqual(want);
          }
          expect(stream.length).toBe(live().length);
          const all = stream.slice({ id: MIN_ID, exclusive: false }, { id: MAX_ID, exclusive: false }, Number.MAX_SAFE_INTEGER);
          expect(all.map((s) => s.first.id)).toEqual(live().map((e) => e.id));
          expect(all.every((s) => stream.at(s.pos) === s)).toBe(true);
        }
      }),
      { numRuns: 40 },
    );
  });
});
