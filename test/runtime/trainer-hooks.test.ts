/**
 * The data plane and the control plane in one process: a KasminaTrainer's hooks drive the layer
 * actors (ticks, metrics), the actors' transitions reach the forward pass through the shared
 * state table, and the guards judge metrics the training itself produced.
 */
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend, KasminaLayer, KasminaTrainer } from "../../src/kasmina/index.ts";
import { startSystem, type RunningSystem } from "../../src/runtime/system.ts";
import { layerSpecOf, metricsBySeed, trainerHooks } from "../../src/runtime/trainer-hooks.ts";
import { blueprintUpdateCommand } from "../../src/protocol/make.ts";

let system: RunningSystem | undefined;
beforeAll(async () => {
  await initBackend();
});
afterAll(async () => {
  await system?.close();
});

const task = () => {
  const x = tf.randomNormal([64, 6], 0, 1, "float32", 5);
  const y = tf.sin(tf.matMul(x, tf.randomNormal([6, 1], 0, 1, "float32", 6)));
  return { x, y };
};

describe("trainer hooks feed the layer actors", () => {
  it("ticks count for the validators, training metrics reach the guards, and transitions reach the next forward pass", async () => {
    const { x, y } = task();
    const kasmina = new KasminaLayer({ units: 16, numSeeds: 4, activation: "relu", layerId: "hidden", seed: 1, inputShape: [6] });
    const model = tfl.sequential({ layers: [kasmina, tfl.layers.dense({ units: 1 })] });
    model.compile({ optimizer: tf.train.adam(0.02), loss: "meanSquaredError" });
    // Small dwell times and a lenient reconstruction gate, so a few epochs walk the lifecycle.
    system = await startSystem({
      layers: [layerSpecOf(kasmina, { guards: { minEpochs: { TRAINING: 3, GRAFTING: 2 }, maxReconstructionLoss: 0.9 } })],
      inspect: "",
    });
    const hooks = trainerHooks(system);
    const trainer = new KasminaTrainer({ layers: [kasmina], hooks, telemetryEvery: 2, grafting: { rampSteps: 4 } });
    // Ticks and metrics travel on the layer's telemetry stream; `settled` waits until the actor has them.
    const fit = async (epochs: number) => {
      await model.fit(x, y, { epochs, batchSize: 16, verbose: 0, callbacks: [trainer.callback()] });
      await hooks.settled();
    };

    const dormantOut = (model.predict(x) as tf.Tensor).dataSync().slice();
    expect(await system.transition("hidden", 1, "GERMINATED")).toMatchObject({ code: "ok" });
    expect(await system.transition("hidden", 1, "TRAINING")).toMatchObject({ code: "ok" });
    // The actor's transition is in the table the layer reads.
    expect(kasmina.table.row(1).state).toBe("TRAINING");

    await fit(2);
    // Two epochs: one tick per layer per epoch reached the actor and the table.
    expect(system.layer("hidden").epochsInState(1)).toBe(2);
    expect(kasmina.table.row(1).epochsInState).toBe(2);
    expect(await system.transition("hidden", 1, "GRAFTING")).toMatchObject({ code: "guard_failed", details: { guard: "min_epochs" } });

    await fit(1);
    // The reconstruction loss the training measured is what the guard judges.
    const loss = system.layer("hidden").seed(1).context.metrics.reconstruction_loss;
    expect(loss).toBeGreaterThan(0);
    expect(loss).toBeLessThan(0.9);
    // TRAINING keeps the output exactly the host's: the blueprint is not blended yet.
    expect(await system.transition("hidden", 1, "GRAFTING")).toMatchObject({ code: "ok" });
    expect(kasmina.table.row(1)).toMatchObject({ state: "GRAFTING", alpha: 0 });

    await fit(1);
    // Grafting ramps alpha in the data plane, step by step, and the metrics reports that arrive
    // meanwhile do not reset it (regression: they used to write the actor's entry alpha back).
    const ramped = kasmina.table.row(1).alpha;
    expect(ramped).toBeGreaterThan(0);
    system.reportMetrics("hidden", { 1: { drift: 0.01 } });
    expect(kasmina.table.row(1).alpha).toBe(ramped);
    const grafted = (model.predict(x) as tf.Tensor).dataSync();
    expect(Array.from(grafted)).not.toEqual(Array.from(dormantOut));
  }, 60_000);

  it("metricsBySeed leaves out what does not apply (NaN), so a known value is not overwritten by unknown", () => {
    const batch = { numSeeds: 2, columns: ["reconstruction_loss", "performance_delta"] as const, rows: new Float32Array([0.5, Number.NaN, Number.NaN, Number.NaN]) };
    expect(metricsBySeed(batch)).toEqual({ 0: { reconstruction_loss: 0.5 } });
  });

  it("an unknown blueprint id is refused with the registry's answer", async () => {
    const kasmina = new KasminaLayer({ units: 8, numSeeds: 2, layerId: "other", inputShape: [4] });
    const s = await startSystem({ layers: [layerSpecOf(kasmina)], inspect: "" });
    try {
      const { blueprintUpdateCommand } = await import("../../src/protocol/make.ts");
      const bad = await s.send(blueprintUpdateCommand({ layer_id: "other", seed_id: 0, blueprint_id: "no_such_blueprint", grafting_strategy: "linear" }));
      expect(bad).toMatchObject({ success: false, code: "invalid_message" });
      expect(bad.error).toContain("no_such_blueprint");
      const good = await s.send(blueprintUpdateCommand({ layer_id: "other", seed_id: 0, blueprint_id: "residual_wide_tanh", grafting_strategy: "linear" }));
      expect(good).toMatchObject({ success: true });
      expect(kasmina.table.row(0).blueprint).toBeGreaterThanOrEqual(0);
    } finally {
      await s.close();
    }
  });
});

describe("layerSpecOf", () => {
  it("lets the layer take only the blueprint kinds it holds banks for (regression: a registered kind it lacked was taken, and the next forward pass threw)", async () => {
    const kasmina = new KasminaLayer({ units: 8, numSeeds: 4, activation: "relu", layerId: "narrow", blueprints: ["residual_mlp"], inputShape: [6] });
    tfl.sequential({ layers: [kasmina] });
    const running = await startSystem({ layers: [layerSpecOf(kasmina)], inspect: "" });
    try {
      const refused = await running.send(blueprintUpdateCommand({ layer_id: "narrow", seed_id: 1, blueprint_id: "lateral_wide", grafting_strategy: "linear" }));
      expect(refused).toMatchObject({ success: false, code: "invalid_message" });
      expect(refused.error).toMatch(/layer narrow has no such blueprint/);
      const taken = await running.send(blueprintUpdateCommand({ layer_id: "narrow", seed_id: 1, blueprint_id: "residual_mlp", grafting_strategy: "linear" }));
      expect(taken.success).toBe(true);
      await running.transition("narrow", 1, "GERMINATED");
      expect(() => kasmina.apply(tf.zeros([2, 6]))).not.toThrow();
    } finally {
      await running.close();
    }
  });
});
