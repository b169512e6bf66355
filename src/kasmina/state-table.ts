import { stateCode, stateOf, GRAFTING_STRATEGIES, type GraftingStrategy, type SeedState } from "../../machines/lifecycle.ts";

/**
 * The dense per-layer seed table: one row per seed, one typed array per column.
 *
 * The control plane writes it (the layer actor, on every transition, or a replica applying
 * StateTransitionEvents); the data plane reads whole columns as tensors on each forward pass.
 * Keeping it columnar is what lets the forward pass stay vectorized: no per-seed objects.
 *
 * `version` increases on every write, so a reader can cache the tensors it built from the
 * table and rebuild them only when the table changed.
 *
 * A SeedRow is one seed's row as `StateTable.row(seedId)` returns it, with its codes decoded.
 */
export interface SeedRow {
  readonly state: SeedState;
  /** Index into the blueprint registry, or -1 for none. */
  readonly blueprint: number;
  /** Epochs (ticks) the seed has spent in its state. */
  readonly epochsInState: number;
  /** The blend of the seed's blueprint into the layer's output, 0 to 1 (the data plane ramps it while GRAFTING). */
  readonly alpha: number;
  /** How the seed's alpha ramps while GRAFTING. */
  readonly strategy: GraftingStrategy;
  /** Errors the data plane reported for the seed (the cull validator reads it). */
  readonly errorCount: number;
}

/**
 * One layer's seeds as dense columns (one typed array per field, one entry per seed): what the
 * forward pass of a KasminaLayer reads. Its layer actor writes it on every transition, so leave
 * writes to the control plane (`LayerSpec.table`, `layerSpecOf`); read it with `row(seedId)`.
 * A seed id outside 0..numSeeds-1 throws a RangeError.
 */
export class StateTable {
  /** Each seed's lifecycle state, as its index in SEED_STATES (0 = DORMANT). */
  readonly state: Uint8Array;
  /** Each seed's blueprint, as its index in the blueprint registry; -1 for none. */
  readonly blueprint: Int32Array;
  readonly epochsInState: Uint32Array;
  readonly alpha: Float32Array;
  /** Each seed's grafting strategy, as its index in GRAFTING_STRATEGIES (0 = linear). */
  readonly strategy: Uint8Array;
  readonly errorCount: Uint32Array;
  private _version = 0;
  private readonly listeners = new Set<(seedId: number) => void>();

  constructor(readonly numSeeds: number) {
    if (!Number.isInteger(numSeeds) || numSeeds < 1) throw new RangeError(`numSeeds must be a positive integer, got ${numSeeds}`);
    this.state = new Uint8Array(numSeeds); // 0 = DORMANT
    this.blueprint = new Int32Array(numSeeds).fill(-1);
    this.epochsInState = new Uint32Array(numSeeds);
    this.alpha = new Float32Array(numSeeds);
    this.strategy = new Uint8Array(numSeeds); // 0 = linear
    this.errorCount = new Uint32Array(numSeeds);
  }

  /** Increases on every write: a reader that cached tensors built from the table rebuilds them when it changed. */
  get version(): number {
    return this._version;
  }

  /** One seed's row, decoded. */
  row(seedId: number): SeedRow {
    this.check(seedId);
    return {
      state: stateOf(this.state[seedId]!),
      blueprint: this.blueprint[seedId]!,
      epochsInState: this.epochsInState[seedId]!,
      alpha: this.alpha[seedId]!,
      strategy: GRAFTING_STRATEGIES[this.strategy[seedId]!]!,
      errorCount: this.errorCount[seedId]!,
    };
  }

  /** Seeds that are not DORMANT (a LayerHealthReport's `active_seeds`). */
  activeCount(): number {
    let active = 0;
    for (let i = 0; i < this.numSeeds; i++) if (this.state[i] !== 0) active++;
    return active;
  }

  /** Writes the given columns of one row. */
  write(seedId: number, row: Partial<SeedRow>): void {
    this.check(seedId);
    if (row.state !== undefined) this.state[seedId] = stateCode(row.state);
    if (row.blueprint !== undefined) this.blueprint[seedId] = row.blueprint;
    if (row.epochsInState !== undefined) this.epochsInState[seedId] = row.epochsInState;
    if (row.alpha !== undefined) this.alpha[seedId] = row.alpha;
    if (row.strategy !== undefined) this.strategy[seedId] = GRAFTING_STRATEGIES.indexOf(row.strategy);
    if (row.errorCount !== undefined) this.errorCount[seedId] = row.errorCount;
    this._version++;
    for (const listener of this.listeners) listener(seedId);
  }

  /** Adds `epochs` to every seed's epochs-in-state counter: one call per layer per tick. */
  tick(epochs = 1): void {
    for (let i = 0; i < this.numSeeds; i++) this.epochsInState[i] = this.epochsInState[i]! + epochs;
    this._version++;
  }

  /**
   * Replaces the alpha column in one write: the data plane advances every grafting seed's alpha
   * each training step, and one version bump per step (not one per seed) keeps the forward
   * pass's cached tensors to one rebuild. Like `tick`, it notifies no row listener: alpha is
   * the data plane's own column, not lifecycle state. Returns false, bumping nothing, when no
   * value changed.
   */
  setAlphas(values: ArrayLike<number>): boolean {
    if (values.length !== this.numSeeds) throw new RangeError(`expected ${this.numSeeds} alphas, got ${values.length}`);
    let changed = false;
    for (let i = 0; i < this.numSeeds; i++) {
      if (this.alpha[i] !== Math.fround(values[i]!)) {
        changed = true;
        break;
      }
    }
    if (!changed) return false;
    this.alpha.set(values);
    this._version++;
    return true;
  }

  /** Called with the seed id after every row write. */
  onWrite(listener: (seedId: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A deep copy, for checkpoints and for comparing before/after in tests. */
  snapshot(): StateTableSnapshot {
    return {
      numSeeds: this.numSeeds,
      state: Array.from(this.state),
      blueprint: Array.from(this.blueprint),
      epochsInState: Array.from(this.epochsInState),
      alpha: Array.from(this.alpha),
      strategy: Array.from(this.strategy),
      errorCount: Array.from(this.errorCount),
    };
  }

  /** Overwrites every column from a snapshot of a table of the same size (else a RangeError); row listeners are not called. */
  restore(snapshot: StateTableSnapshot): void {
    if (snapshot.numSeeds !== this.numSeeds) {
      throw new RangeError(`snapshot has ${snapshot.numSeeds} seeds, this table has ${this.numSeeds}`);
    }
    this.state.set(snapshot.state);
    this.blueprint.set(snapshot.blueprint);
    this.epochsInState.set(snapshot.epochsInState);
    this.alpha.set(snapshot.alpha);
    this.strategy.set(snapshot.strategy);
    this.errorCount.set(snapshot.errorCount);
    this._version++;
  }

  private check(seedId: number): void {
    if (!Number.isInteger(seedId) || seedId < 0 || seedId >= this.numSeeds) {
      throw new RangeError(`seed ${seedId} is outside 0..${this.numSeeds - 1}`);
    }
  }
}

/** A StateTable's columns copied into plain arrays (`snapshot()`), in the table's codes; `restore` takes it back. */
export interface StateTableSnapshot {
  readonly numSeeds: number;
  readonly state: number[];
  readonly blueprint: number[];
  readonly epochsInState: number[];
  readonly alpha: number[];
  readonly strategy: number[];
  readonly errorCount: number[];
}
