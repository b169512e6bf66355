/**
 * The trainer's side of Tamiyo's numbers that need held-out data: every few steps, each seed
 * whose blueprint is blended in is measured on the validation set with its blueprint on and off
 * (`performance_delta`, `accuracy_delta`); a seed in FINE_TUNING also gets `total_improvement`
 * and `final_stability` from its last three measurements. All of it goes on the layer's
 * telemetry stream, where the layer's guards and Tamiyo read it.
 */
import { stateCode } from "../../machines/lifecycle.ts";
import { measureSeedContributions } from "../kasmina/seed-evaluator.ts";
import type { EsperSystem } from "../runtime/system.ts";
import type { DigitSet } from "./mnist.ts";
import type { HostNetwork } from "./model.ts";

/** Measurements of one seed in FINE_TUNING kept for its verdict. */
const FINE_TUNING_WINDOW = 3;
const FINE_TUNING = stateCode("FINE_TUNING");

export class HeldOutEvaluator {
  private readonly fineTuning = new Map<string, number[]>();

  constructor(
    private readonly network: HostNetwork,
    private readonly validation: DigitSet,
    private readonly system: Pick<EsperSystem, "reportMetrics">,
  ) {}

  async measure(): Promise<void> {
    const measured = measureSeedContributions({ model: this.network.model, layers: this.network.layers, x: this.validation.x, y: this.validation.y });
    for (const layer of this.network.layers) {
      const bySeed: Record<number, Record<string, number>> = {};
      for (const seed of measured.seeds.filter((s) => s.layerId === layer.layerId)) {
        const metrics: Record<string, number> = { performance_delta: seed.performanceDelta, accuracy_delta: seed.accuracyDelta };
        const key = `${layer.layerId}/${seed.seedId}`;
        if (layer.table.state[seed.seedId] === FINE_TUNING) Object.assign(metrics, this.fineTuned(key, seed.performanceDelta));
        else this.fineTuning.delete(key);
        bySeed[seed.seedId] = metrics;
      }
      await this.system.reportMetrics(layer.layerId, bySeed);
    }
  }

  /** `total_improvement` (the mean delta) and `final_stability` (1 / (1 + cv²)) once a seed has three measurements in FINE_TUNING. */
  private fineTuned(key: string, delta: number): Record<string, number> {
    const list = this.fineTuning.get(key) ?? [];
    list.push(delta);
    if (list.length > FINE_TUNING_WINDOW) list.shift();
    this.fineTuning.set(key, list);
    if (list.length < FINE_TUNING_WINDOW) return {};
    const mean = list.reduce((a, b) => a + b, 0) / list.length;
    const sd = Math.sqrt(list.reduce((a, b) => a + (b - mean) ** 2, 0) / list.length);
    // 1 when the seed's contribution holds steady across measurements, toward 0 as it swings.
    const cv = Math.abs(mean) > 1e-12 ? sd / Math.abs(mean) : Number.POSITIVE_INFINITY;
    return { total_improvement: mean, final_stability: 1 / (1 + cv * cv) };
  }
}
