/**
 * Rounds paced by the trainer instead of the wall clock: a round is due when every layer Tamiyo
 * steers has reported `every` more ticks (performance_summary.epoch of its reports) since the
 * last round was due. A Tamiyo in her own process then decides at the same points of training
 * as one that a training loop calls at fixed steps, whatever the speed of either.
 */
import { TamiyoConfigError } from "./config.ts";

export class TickPacer {
  private readonly ticks = new Map<string, number>();
  /** The slowest layer's tick when the last round was due (0: none yet). */
  private decidedAt = 0;

  constructor(
    private readonly layerIds: readonly string[],
    private readonly every: number,
  ) {
    if (!Number.isInteger(every) || every < 1) throw new TamiyoConfigError(`decideEveryTicks must be a positive integer, got ${every}`);
  }

  /**
   * Takes one report's layer and performance summary; true when a round is now due. A leader that
   * takes over mid-run decides at the first tick she reads, then every `every` ticks.
   */
  observe(layerId: string, summary: Readonly<Record<string, unknown>>): boolean {
    const epoch = summary["epoch"];
    if (typeof epoch !== "number" || !Number.isFinite(epoch) || !this.layerIds.includes(layerId)) return false;
    if (epoch <= (this.ticks.get(layerId) ?? 0)) return false;
    this.ticks.set(layerId, epoch);
    if (this.ticks.size < this.layerIds.length) return false;
    const slowest = Math.min(...this.ticks.values());
    if (Math.floor(slowest / this.every) <= Math.floor(this.decidedAt / this.every)) return false;
    this.decidedAt = slowest;
    return true;
  }
}
