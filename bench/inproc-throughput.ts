/**
 * inproc-throughput: commands through the in-memory bus into seed actors, each causing a
 * transition, against bare `actor.send` on the same seed machine.
 *
 *   esper     startSystem on the embedded MemoryBus, one layer of `seeds` seeds; every seed is
 *             walked DORMANT -> GERMINATED -> ... -> FOSSILIZED (7 forced transitions) by
 *             LifecycleTransitionCommands sent with `system.transition`, `window` in flight at
 *             once; each resolves with its CommandResult (checked: every one `ok`). The command
 *             path is all of esper's: message, control stream, mailbox bridge (decode, dedupe,
 *             commit of snapshot + event + result + ack), seed actor, event stream, client.
 *   baseline  the same seeds as bare actors of machines/seed.ts, started beforehand, sent the
 *             same events (`{ type: "to.GERMINATED", force: true }` ...) with `actor.send`.
 * A fresh system (and fresh actors) per round, started outside the timing; rounds alternate
 * esper, esper with fast paths off (src/protocol/fast: in-process entries and the decoders of the
 * three messages of a command; `commands_per_s_no_fast`, `fast_ratio`), and the baseline;
 * medians reported.
 */
import { createActor } from "xstate";
import type { SeedState } from "../machines/lifecycle.ts";
import { seedMachine } from "../machines/seed.ts";
import { setFastPaths } from "../src/protocol/fast/switch.ts";
import { startSystem } from "../src/runtime/system.ts";
import { median, round, type Benchmark } from "./harness.ts";
import { benchNamespace } from "./lib/redis.ts";

const PATH: readonly SeedState[] = ["GERMINATED", "TRAINING", "GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING", "FOSSILIZED"];

const esperRound = async (seeds: number, window: number, namespace: string): Promise<number> => {
  const system = await startSystem({ layers: [{ id: "L0", seeds }], namespace, inspect: "" });
  try {
    let failed = 0;
    const start = performance.now();
    for (const target of PATH) {
      for (let from = 0; from < seeds; from += window) {
        const sent = [];
        for (let seed = from; seed < Math.min(seeds, from + window); seed++) sent.push(system.transition("L0", seed, target, { force: true, timeoutMs: 60_000 }));
        for (const result of await Promise.all(sent)) if (!result.success) failed++;
      }
    }
    const seconds = (performance.now() - start) / 1000;
    if (failed > 0) throw new Error(`${failed} commands did not succeed; the benchmark would measure refusals`);
    return (seeds * PATH.length) / seconds;
  } finally {
    await system.close();
  }
};

const baselineRound = (seeds: number): number => {
  const actors = Array.from({ length: seeds }, (_, seedId) => createActor(seedMachine, { input: { seedId } }).start());
  const events = PATH.map((target) => ({ type: `to.${target}` as const, force: true }));
  const start = performance.now();
  for (const event of events) for (const actor of actors) actor.send(event);
  const seconds = (performance.now() - start) / 1000;
  const wrong = actors.filter((a) => a.getSnapshot().value !== "FOSSILIZED").length;
  for (const actor of actors) actor.stop();
  if (wrong > 0) throw new Error(`${wrong} bare actors did not reach FOSSILIZED`);
  return (seeds * PATH.length) / seconds;
};

const inprocThroughput: Benchmark = async ({ quick, log }) => {
  // 1000 seeds, one layer: the size the benchmark has always run at, so figures compare across sessions.
  const [seeds, window, rounds] = quick ? [100, 50, 1] : [1_000, 1_000, 5];
  const namespace = benchNamespace("inproc");
  log(`${seeds} seeds x ${PATH.length} transitions per round, ${window} commands in flight, ${rounds} rounds${quick ? "" : " + 1 warm-up"}`);
  const esper: number[] = [];
  const slow: number[] = [];
  const bare: number[] = [];
  const withoutFastPaths = async () => {
    const before = setFastPaths(false);
    try {
      return await esperRound(seeds, window, namespace);
    } finally {
      setFastPaths(before);
    }
  };
  for (let r = quick ? 1 : 0; r <= rounds; r++) {
    const e = await esperRound(seeds, window, namespace);
    const n = await withoutFastPaths();
    const b = baselineRound(seeds);
    if (r === 0) {
      log(`warm-up: esper ${Math.round(e)}/s, no fast paths ${Math.round(n)}/s, xstate ${Math.round(b)}/s`);
      continue;
    }
    esper.push(e);
    slow.push(n);
    bare.push(b);
    log(`round ${r}: esper ${Math.round(e)} commands/s, no fast paths ${Math.round(n)}/s, xstate ${Math.round(b)} sends/s (${round(e / b, 3)})`);
  }
  return {
    seeds,
    in_flight: window,
    commands_per_round: seeds * PATH.length,
    rounds,
    commands_per_s: Math.round(median(esper)),
    xstate_sends_per_s: Math.round(median(bare)),
    ratio: round(median(esper.map((e, i) => e / bare[i]!)), 3),
    commands_per_s_no_fast: Math.round(median(slow)),
    fast_ratio: round(median(esper.map((e, i) => e / slow[i]!)), 3),
  };
};

export default inprocThroughput;
