/**
 * What the grown run leaves in its record, kept as it happens: each seed's lifecycle, Tamiyo's
 * decisions (with their answers once they come) and the alerts raised, each stamped with the
 * fractional epoch of the training step it happened at.
 */
import type { SeedState } from "../../machines/lifecycle.ts";
import type { PerformanceAlert, StateTransitionEvent } from "../protocol/messages.ts";
import type { DecisionLogEntry } from "../tamiyo/tamiyo.ts";
import type { HostNetwork } from "./model.ts";
import type { AlertEntry, DecisionEntry, SeedStep, SeedTimeline } from "./record.ts";

/** What the journal keeps of a decision: Tamiyo's log entry in process, or the lines `esper tamiyo` prints. */
export type JournalDecision = Pick<DecisionLogEntry, "commandId" | "kind" | "layerId" | "seedId" | "action" | "reason" | "numbers" | "outcome">;

export class RunJournal {
  private readonly timelines = new Map<string, { line: SeedTimeline; readonly steps: SeedStep[] }>();
  private readonly entries: DecisionEntry[] = [];
  private readonly byCommand = new Map<string, number>();
  readonly alerts: AlertEntry[] = [];

  /** `epoch()`: the fractional epoch the run is at now. */
  constructor(
    private readonly network: HostNetwork,
    private readonly epoch: () => number,
  ) {}

  transition(t: StateTransitionEvent): void {
    const key = `${t.layer_id}/${t.seed_id}`;
    let entry = this.timelines.get(key);
    if (!entry) {
      const layer = this.network.layers.find((l) => l.layerId === t.layer_id);
      const index = layer?.table.blueprint[t.seed_id] ?? -1;
      const steps: SeedStep[] = [];
      entry = { line: { layerId: t.layer_id, seedId: t.seed_id, blueprint: layer && index >= 0 ? (layer.blueprintIds[layer.kindOf(index)] ?? null) : null, steps }, steps };
      this.timelines.set(key, entry);
    }
    entry.steps.push({ state: t.to_state as SeedState, epoch: this.epoch(), reason: t.reason });
  }

  /**
   * A blueprint a seed took, as a BlueprintEvent tells it: across processes it comes after the
   * seed's transition, which could not read it from the table yet.
   */
  blueprint(layerId: string, seedId: number, blueprintId: string): void {
    const entry = this.timelines.get(`${layerId}/${seedId}`);
    if (entry && entry.line.blueprint === null) entry.line = { ...entry.line, blueprint: blueprintId };
  }

  /** A decision as Tamiyo logs it: new ones are added (and returned), answers fill in the outcome of the one they answer. */
  decision(d: JournalDecision): DecisionEntry | null {
    const at = this.byCommand.get(d.commandId);
    if (at !== undefined) {
      if (d.outcome) this.entries[at] = { ...this.entries[at]!, outcome: d.outcome };
      return null;
    }
    const entry: DecisionEntry = {
      epoch: this.epoch(),
      kind: d.kind,
      layerId: d.layerId,
      seedId: d.seedId,
      action: d.action,
      reason: d.reason,
      numbers: d.numbers,
      ...(d.outcome ? { outcome: d.outcome } : {}),
    };
    this.byCommand.set(d.commandId, this.entries.length);
    this.entries.push(entry);
    return entry;
  }

  alert(alert: PerformanceAlert): void {
    this.alerts.push({
      epoch: this.epoch(),
      layerId: alert.layer_id,
      seedId: alert.seed_id ?? null,
      severity: alert.severity,
      metric: alert.metric_name,
      value: alert.metric_value,
      threshold: alert.threshold ?? Number.NaN,
      recommendedAction: alert.recommended_action ?? "",
    });
  }

  get decisions(): readonly DecisionEntry[] {
    return this.entries;
  }

  /** Every seed that left DORMANT, by layer and seed. */
  seeds(): SeedTimeline[] {
    return [...this.timelines.values()].map((t) => t.line).sort((a, b) => a.layerId.localeCompare(b.layerId) || a.seedId - b.seedId);
  }
}
