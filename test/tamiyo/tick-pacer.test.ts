import { describe, expect, test } from "vitest";
import { TamiyoConfigError } from "../../src/tamiyo/config.ts";
import { TickPacer } from "../../src/tamiyo/tick-pacer.ts";

describe("TickPacer: rounds at the trainer's pace", () => {
  test("a round is due when every layer has reported the next multiple of `every` ticks, once", () => {
    const pacer = new TickPacer(["a", "b"], 5);
    const due: number[] = [];
    for (let tick = 1; tick <= 12; tick++) {
      if (pacer.observe("a", { epoch: tick })) due.push(tick);
      // b reports the same tick a little later; the round waits for it.
      if (pacer.observe("b", { epoch: tick })) due.push(tick);
    }
    expect(due).toEqual([5, 10]);
  });

  test("reports without a tick, of other layers, or going backwards change nothing", () => {
    const pacer = new TickPacer(["a"], 2);
    expect(pacer.observe("a", { val_loss: 0.5 })).toBe(false);
    expect(pacer.observe("other", { epoch: 100 })).toBe(false);
    expect(pacer.observe("a", { epoch: "4" })).toBe(false);
    expect(pacer.observe("a", { epoch: 1 })).toBe(false);
    expect(pacer.observe("a", { epoch: 2 })).toBe(true);
    expect(pacer.observe("a", { epoch: 2 })).toBe(false);
    expect(pacer.observe("a", { epoch: 1 })).toBe(false);
    expect(pacer.observe("a", { epoch: 3 })).toBe(false);
    // A tick that skips past a multiple (several epochs in one report) is due once.
    expect(pacer.observe("a", { epoch: 9 })).toBe(true);
    expect(pacer.observe("a", { epoch: 9.5 })).toBe(false);
    expect(pacer.observe("a", { epoch: 10 })).toBe(true);
  });

  test("a leader that takes over mid-run decides at the first ticks she reads", () => {
    const pacer = new TickPacer(["a", "b"], 5);
    expect(pacer.observe("a", { epoch: 137 })).toBe(false);
    expect(pacer.observe("b", { epoch: 136 })).toBe(true);
    expect(pacer.observe("b", { epoch: 139 })).toBe(false);
    expect(pacer.observe("b", { epoch: 140 })).toBe(false); // a is still at 137
    expect(pacer.observe("a", { epoch: 140 })).toBe(true);
  });

  test("every must be a positive integer: a TamiyoConfigError", () => {
    expect(() => new TickPacer(["a"], 0)).toThrow(TamiyoConfigError);
    expect(() => new TickPacer(["a"], 1.5)).toThrow(/decideEveryTicks must be a positive integer/);
  });
});
