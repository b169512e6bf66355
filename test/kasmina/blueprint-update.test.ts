import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";
import { blueprintIndex, KasminaConfigError, KasminaLayer, unmetThresholds, updateBlueprint, type BlueprintEventFields } from "../../src/kasmina/index.ts";
import { maxAbsDiff, randomInput, scrambleBlueprints, useDefaultBackend } from "./support.ts";

beforeAll(useDefaultBackend);

const fineTuned = () => {
  const layer = new KasminaLayer({ units: 12, numSeeds: 3, activation: "relu", layerId: "l1", seed: 4 });
  layer.build([null, 5]);
  layer.table.write(1, { state: "FINE_TUNING", blueprint: blueprintIndex("residual_mlp"), strategy: "adaptive", epochsInState: 7 });
  scrambleBlueprints(layer, [0, 1, 2]);
  return layer;
};

const outputOf = (layer: KasminaLayer, x: tf.Tensor): Float32Array => (layer.apply(x) as tf.Tensor).dataSync() as Float32Array;

describe("updateBlueprint", () => {
  it("swaps in a fresh blueprint whose zero decoder leaves the layer's function unchanged", async () => {
    const layer = fineTuned();
    const x = randomInput(4, 5);
    const hostOnly = fineTuned();
    hostOnly.table.write(1, { state: "DORMANT" });
    const events: BlueprintEventFields[] = [];
    const result = await updateBlueprint(layer, 1, "residual_wide_tanh", { strategy: "stability", onEvent: (e) => events.push(e) });
    expect(result).toMatchObject({ ok: true, rolledBack: false });
    expect(layer.table.row(1)).toMatchObject({ blueprint: blueprintIndex("residual_wide_tanh"), strategy: "stability", state: "FINE_TUNING" });
    expect(maxAbsDiff(outputOf(layer, x), outputOf(hostOnly, x))).toBe(0);
    expect(events).toEqual([
      {
        layer_id: "l1",
        seed_id: 1,
        blueprint_id: "residual_wide_tanh",
        operation: "updated",
        previous_blueprint_id: "residual_mlp",
        metrics_delta: {},
        success: true,
        details: {},
      },
    ]);
  });

  it("rolls back to the previous blueprint, weights and row exactly, when validation misses its thresholds", async () => {
    const layer = fineTuned();
    const x = randomInput(4, 5);
    const before = outputOf(layer, x);
    const row = layer.table.row(1);
    let calls = 0;
    const validate = () => ({ accuracy: calls++ === 0 ? 0.8 : 0.6, loss: 0.3 });
    const events: BlueprintEventFields[] = [];
    const result = await updateBlueprint(layer, 1, "residual_bottleneck", {
      validate,
      validationMetrics: { accuracy: 0.75, max_loss: 0.5 },
      onEvent: (e) => events.push(e),
    });
    expect(result).toMatchObject({ ok: false, rolledBack: true, unmet: ["accuracy >= 0.75 (got 0.6)"] });
    expect(layer.table.row(1)).toEqual(row);
    expect(maxAbsDiff(outputOf(layer, x), before)).toBe(0);
    expect(events.map((e) => e.operation)).toEqual(["updated", "rolled_back"]);
    expect(events[1]).toMatchObject({ success: true, previous_blueprint_id: "residual_mlp", blueprint_id: "residual_bottleneck" });
    expect(events[1]!.metrics_delta.accuracy).toBeCloseTo(-0.2, 6);
  });

  it("keeps the new blueprint when validation fails but rollback_on_failure is off, and when validation passes", async () => {
    const kept = fineTuned();
    const failed = await updateBlueprint(kept, 1, "residual_bottleneck", { validate: () => ({ accuracy: 0.1 }), validationMetrics: { accuracy: 0.5 }, rollbackOnFailure: false });
    expect(failed).toMatchObject({ ok: false, rolledBack: false });
    expect(kept.table.blueprint[1]).toBe(blueprintIndex("residual_bottleneck"));
    expect(failed.events.at(-1)).toMatchObject({ operation: "validated", success: false });

    const passed = await updateBlueprint(fineTuned(), 1, "residual_bottleneck", { validate: () => ({ accuracy: 0.9 }), validationMetrics: { accuracy: 0.5 } });
    expect(passed).toMatchObject({ ok: true, rolledBack: false });
    expect(passed.events.at(-1)).toMatchObject({ operation: "validated", success: true });
  });

  it("treats a validator that throws as a failed validation and rolls back", async () => {
    const layer = fineTuned();
    let first = true;
    const validate = () => {
      if (first) {
        first = false;
        return {};
      }
      throw new Error("validation set missing");
    };
    const result = await updateBlueprint(layer, 1, "residual_bottleneck", { validate });
    expect(result.rolledBack).toBe(true);
    expect(result.unmet[0]).toMatch(/validation set missing/);
    expect(layer.table.blueprint[1]).toBe(blueprintIndex("residual_mlp"));
  });

  it("refuses a blueprint id nobody registered, or one the layer holds no bank for", async () => {
    await expect(updateBlueprint(fineTuned(), 1, "optimized_v2")).rejects.toBeInstanceOf(KasminaConfigError);
    const narrow = new KasminaLayer({ units: 4, numSeeds: 2, blueprints: ["residual_mlp"] });
    narrow.build([null, 2]);
    await expect(updateBlueprint(narrow, 0, "residual_wide_tanh")).rejects.toThrow(/holds no bank/);
  });
});

describe("unmetThresholds", () => {
  it("reads bare names and min_ as lower bounds, max_ as upper bounds, and a missing metric as unmet", () => {
    expect(unmetThresholds({ acc: 0.9, loss: 0.2 }, { acc: 0.9, min_acc: 0.5, max_loss: 0.2 })).toEqual([]);
    expect(unmetThresholds({ acc: 0.4, loss: 0.3 }, { acc: 0.5, max_loss: 0.2, f1: 0.1 })).toEqual(["acc >= 0.5 (got 0.4)", "loss <= 0.2 (got 0.3)", "f1 was not measured"]);
  });
});
