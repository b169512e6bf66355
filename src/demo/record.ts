/**
 * What one `esper demo` run leaves behind: both training runs epoch by epoch, every seed's
 * lifecycle, Tamiyo's decision log and the alerts raised. The terminal summary, the HTML report
 * and the `growth` benchmark all read this one record, so the three never disagree.
 * Plain data (JSON-safe): `esper demo --json` could write it as it is.
 */
import type { SeedState } from "../../machines/lifecycle.ts";

/** One epoch of one run. Losses are mean cross-entropy; accuracies are fractions in [0, 1]. */
export interface EpochPoint {
  readonly epoch: number;
  readonly trainLoss: number;
  readonly trainAcc: number;
  readonly valLoss: number;
  readonly valAcc: number;
  readonly testAcc: number;
  /** Parameters as a user counts them: host plus the blueprints of grafted and fossilized seeds. */
  readonly params: number;
  /** Seeds by lifecycle state at the end of the epoch (states with no seed left out). */
  readonly seeds: Readonly<Partial<Record<SeedState, number>>>;
}

export interface RunRecord {
  /** "host" (the host alone) or "grown" (the same host under Tamiyo). */
  readonly name: string;
  readonly epochs: readonly EpochPoint[];
  readonly finalTestAcc: number;
  readonly params: number;
  readonly seconds: number;
}

/** One step of a seed's lifecycle; `epoch` is fractional (step / steps per epoch). */
export interface SeedStep {
  readonly state: SeedState;
  readonly epoch: number;
  readonly reason: string;
}

export interface SeedTimeline {
  readonly layerId: string;
  readonly seedId: number;
  readonly blueprint: string | null;
  /** In order; the first is the seed leaving DORMANT. */
  readonly steps: readonly SeedStep[];
}

export interface DecisionEntry {
  /** Fractional epoch of the run under Tamiyo at which the decision was taken. */
  readonly epoch: number;
  /** germinate | advance | cull | fossilize | emergency_stop | hold | ... */
  readonly kind: string;
  readonly layerId: string;
  readonly seedId: number | null;
  /** What was asked, e.g. "TRAINING -> GRAFTING" or "germinate with lateral_mlp". */
  readonly action: string;
  readonly reason: string;
  /** The measured numbers behind the decision. */
  readonly numbers: Readonly<Record<string, number>>;
  /** How the layer answered, once it did. */
  readonly outcome?: { readonly success: boolean; readonly code: string; readonly error: string | null };
}

export interface AlertEntry {
  readonly epoch: number;
  readonly layerId: string;
  readonly seedId: number | null;
  readonly severity: "info" | "warning" | "critical";
  readonly metric: string;
  readonly value: number;
  readonly threshold: number;
  readonly recommendedAction: string;
}

export interface DemoSummary {
  readonly hostAcc: number;
  readonly grownAcc: number;
  /** (grownAcc - hostAcc) in percentage points. */
  readonly deltaPts: number;
  readonly paramsHost: number;
  readonly paramsGrown: number;
  readonly germinated: number;
  readonly fossilized: number;
  readonly culled: number;
}

export interface DemoRecord {
  readonly title: string;
  /** ISO 8601. */
  readonly startedAt: string;
  /** What ran: architecture, strategy, epochs, data split, random seed, backend... shown as a table. */
  readonly config: Readonly<Record<string, string | number | boolean>>;
  readonly host: RunRecord;
  readonly grown: RunRecord;
  readonly seeds: readonly SeedTimeline[];
  readonly decisions: readonly DecisionEntry[];
  readonly alerts: readonly AlertEntry[];
  readonly summary: DemoSummary;
}
