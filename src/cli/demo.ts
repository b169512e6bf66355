/**
 * `esper demo`: the control plane end to end, in process. Two layers of 16 seeds; seeds are
 * walked through their lifecycle by commands that must pass the real validators (epochs are
 * ticked and metrics reported, nothing is forced), so the output shows fossilized seeds, a
 * culled one, and a transition the lifecycle refuses.
 */
import type { SeedState } from "../../machines/lifecycle.ts";
import type { CommandResult } from "../protocol/messages.ts";
import { startSystem, type EsperSystem } from "../runtime/system.ts";

const LAYERS = [
  { id: "dense1", seeds: 16 },
  { id: "dense2", seeds: 16 },
];

const say = (line: string) => console.log(line);

export const runDemo = async (_args: string[]): Promise<number> => {
  const system = await startSystem({ layers: LAYERS, source: "demo" });
  say(`esper demo: ${LAYERS.length} layers x ${LAYERS[0]!.seeds} seeds, in process (embedded bus)`);
  system.subscribe((e) => {
    if (e.type === "transition") {
      const t = e.event;
      say(`  ${t.layer_id}/seed ${String(t.seed_id).padStart(2)}  ${t.from_state.padEnd(13)} -> ${t.to_state}${t.reason ? `   (${t.reason})` : ""}`);
    }
  });
  let refused = 0;
  const expect = (result: CommandResult, note: string) => {
    if (!result.success) {
      refused++;
      say(`  ${result.layer_id}/seed ${String(result.seed_id).padStart(2)}  REFUSED ${result.code}: ${result.error}   [${note}]`);
    }
    return result;
  };
  try {
    // Layer dense1: seeds 3 and 7 grow to fossils, seed 11 is culled at evaluation.
    await grow(system, "dense1", [3, 7, 11], expect);
    // Layer dense2: seed 5 germinates and trains, then the layer is emergency-stopped.
    const t = system.transition.bind(system);
    await t("dense2", 5, "GERMINATED", { reason: "loss plateau in dense2" });
    await t("dense2", 5, "TRAINING");
    expect(await t("dense2", 9, "FOSSILIZED", { reason: "a dormant seed cannot fossilize" }), "shown on purpose");
    const [stop] = await system.emergencyStop("dense2", "operator stop");
    say(`  dense2 emergency stop: ${stop!.code}; growth refused until resumed`);
    expect(await t("dense2", 1, "GERMINATED"), "stopped layer refuses growth");

    const summary = summarize(system);
    say("");
    say(`summary: ${Object.entries(summary).map(([s, n]) => `${n} ${s}`).join(", ")}; ${refused} commands refused`);
    return 0;
  } finally {
    await system.close();
  }
};

type Expect = (result: CommandResult, note: string) => CommandResult;

/** Drives seeds through the lifecycle the way Tamiyo and the trainer will: ticks, metrics, commands. */
const grow = async (system: EsperSystem, layer: string, seeds: readonly number[], expect: Expect) => {
  const [keep1, keep2, cull] = seeds as [number, number, number];
  const all = async (target: SeedState, ids: readonly number[], metrics?: Record<string, number>) => {
    for (const id of ids) expect(await system.transition(layer, id, target, metrics ? { metrics } : {}), `${id} -> ${target}`);
  };
  await all("GERMINATED", seeds);
  await all("TRAINING", seeds);
  // Too early: the validators want 100 epochs of training first.
  expect(await system.transition(layer, keep1, "GRAFTING", { metrics: { reconstruction_loss: 0.004 } }), "too early, shown on purpose");
  await system.tick(layer, 100);
  await all("GRAFTING", seeds, { reconstruction_loss: 0.004 });
  await system.tick(layer, 50);
  await all("STABILIZATION", seeds);
  await system.tick(layer, 20);
  await all("EVALUATING", seeds);
  await system.tick(layer, 30);
  await system.reportMetrics(layer, {
    [keep1]: { performance_delta: 0.03, stability_score: 0.93 },
    [keep2]: { performance_delta: 0.02, stability_score: 0.9 },
    [cull]: { performance_delta: -0.08, stability_score: 0.6 },
  });
  await all("FINE_TUNING", [keep1, keep2]);
  expect(await system.transition(layer, cull, "CULLED", { reason: "performance_delta below -0.05" }), "cull");
  await system.tick(layer, 50);
  await all("FOSSILIZED", [keep1, keep2], { total_improvement: 0.021, final_stability: 0.97 });
};

const summarize = (system: EsperSystem): Record<string, number> => {
  const counts: Record<string, number> = {};
  for (const id of system.layerIds) for (const seed of system.layer(id).seeds()) counts[seed.state] = (counts[seed.state] ?? 0) + 1;
  return counts;
};
