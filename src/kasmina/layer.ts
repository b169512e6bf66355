import * as tf from "@tensorflow/tfjs-core";
import { layers, type LayerVariable } from "@tensorflow/tfjs-layers";
import { blueprintParameterCount } from "./blueprint-cost.ts";
import { bankLayout, blueprintAt, freshBankRows, listBlueprints, requireBlueprint, sourceOf, type BankLayout, type BlueprintKind } from "./blueprints.ts";
import { KasminaConfigError } from "./errors.ts";
import { checkActivation, checkInitializer, hostForward, initializerOf, type HostActivation, type InitializerName } from "./host-dense.ts";
import { injectLoss } from "./gradient-ops.ts";
import { seedForward, type SeedBanks } from "./seed-forward.ts";
import { materializePlan, planBasis, planSeeds, releasedSince, type PlanBasis, type SeedPlan } from "./seed-plan.ts";
import { blendsInState } from "./seed-roles.ts";
import { StateTable, type SeedRow } from "./state-table.ts";
import { TelemetryCapture } from "./telemetry.ts";

type LayerArgs = NonNullable<ConstructorParameters<typeof layers.Layer>[0]>;
type Kwargs = Parameters<layers.Layer["call"]>[1];
type Shape = Parameters<layers.Layer["computeOutputShape"]>[0];

/**
 * A KasminaLayer's config: Dense's arguments (units, activation, bias, initializers, and tfjs-layers'
 * `name`, `inputShape`...) plus its seeds and the blueprints they may grow. A bad value throws a
 * KasminaConfigError from the constructor, its `reason` naming which.
 */
export interface KasminaLayerArgs extends LayerArgs {
  /** Output width, as Dense's; must be a positive multiple of `numSeeds`. */
  readonly units: number;
  /** Seeds; each owns `units / numSeeds` consecutive output units (its chunk). */
  readonly numSeeds: number;
  /** The host's activation, as Dense's (one of HOST_ACTIVATIONS). Default "linear". */
  readonly activation?: HostActivation;
  /** Default true. */
  readonly useBias?: boolean;
  /** Default "glorotNormal". */
  readonly kernelInitializer?: InitializerName;
  /** Default "zeros". */
  readonly biasInitializer?: InitializerName;
  /**
   * Blueprint ids this layer holds banks for (memory: one `[numSeeds, width]` bank each).
   * Default: every registered kind that reads the chunk. Kinds that read the layer's input
   * (lateral_*) are held only when named: their bank has a row per input feature per hidden
   * unit, which for a wide layer (1024 inputs, 64 seeds) is hundreds of MB nobody asked for.
   */
  readonly blueprints?: readonly Identifier[];
  /** The kind a seed gets when the table names none (-1). Default: residual_mlp if held, else the first. */
  readonly defaultBlueprint?: Identifier;
  /** The protocol's layer id (`^[A-Za-z0-9_-]{1,64}$`). Default: the layer's name. */
  readonly layerId?: Identifier;
  /** Weight of the TRAINING reconstruction loss in the gradient. Default 1. */
  readonly reconstructionWeight?: number;
  /** Seed for blueprint initialisation, for reproducible runs. */
  readonly seed?: number;
  /** The state table the layer reads. Runtime state, not config: a fresh all-DORMANT table when omitted. */
  readonly table?: StateTable;
}

const LAYER_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * An identifier in the config. tfjs-layers' model JSON snake_cases every string value on save
 * and camelCases it on load ("residual_mlp" comes back "residualMlp"), except string values
 * under a `name` key; so getConfig writes identifiers as `{ name }`, and both forms are accepted.
 */
export type Identifier = string | { readonly name: string };
const identifier = (value: Identifier): string => (typeof value === "string" ? value : value.name);

/**
 * A Dense layer whose output `[batch, units]` is split into `numSeeds` chunks, each owned by a
 * seed that can grow a blueprint into it. Seed state comes from `table`, which the control plane
 * writes; the forward pass turns it into tensors once per table version (seed-plan.ts) and
 * otherwise costs nothing over Dense while every seed is dormant.
 */
export class KasminaLayer extends layers.Layer {
  static readonly className = "KasminaLayer";

  readonly units: number;
  readonly numSeeds: number;
  readonly chunk: number;
  readonly activation: HostActivation;
  readonly useBias: boolean;
  readonly kernelInitializer: InitializerName;
  readonly biasInitializer: InitializerName;
  readonly blueprintIds: readonly string[];
  readonly defaultBlueprint: string;
  readonly layerId: string;
  readonly reconstructionWeight: number;
  readonly seed: number | undefined;
  readonly table: StateTable;
  private builtInputDim: number | null = null;
  private kernel: LayerVariable | null = null;
  private bias: LayerVariable | null = null;
  private banks: LayerVariable[] = [];
  private anchors: LayerVariable[] = [];
  private readonly kinds: readonly BlueprintKind[];
  /** Set at construction when no held kind reads the input (its widths need no input width), else at build. */
  private layoutList: readonly BankLayout[] | null = null;
  private readonly localKind = new Map<number, number>();
  private readonly defaultKind: number;
  private plan: SeedPlan | null = null;
  private basis: PlanBasis | null = null;
  private capture: TelemetryCapture | null = null;
  private releases = 0;
  private ablation: { readonly seeds: readonly number[]; readonly mask: Uint8Array; readonly key: string } | null = null;
  /** The ablation key the current plan was built with ("" for none). */
  private planAblation = "";
  private readonly seedBanks: SeedBanks;

  constructor(args: KasminaLayerArgs) {
    super(args);
    const { units, numSeeds } = args;
    if (!Number.isInteger(numSeeds) || numSeeds < 1) {
      throw new KasminaConfigError({ reason: "bad_seed_count", message: `numSeeds must be a positive integer, got ${numSeeds}` });
    }
    if (!Number.isInteger(units) || units < 1 || units % numSeeds !== 0) {
      throw new KasminaConfigError({
        reason: "units_not_divisible",
        message: `units (${units}) must be a positive multiple of numSeeds (${numSeeds}): each seed owns an equal chunk of the output`,
      });
    }
    this.units = units;
    this.numSeeds = numSeeds;
    this.chunk = units / numSeeds;
    this.activation = checkActivation(args.activation ?? "linear");
    this.useBias = args.useBias ?? true;
    this.kernelInitializer = checkInitializer(args.kernelInitializer ?? "glorotNormal");
    this.biasInitializer = checkInitializer(args.biasInitializer ?? "zeros");
    this.blueprintIds = (args.blueprints ?? listBlueprints().filter((k) => sourceOf(k) === "chunk").map((k) => k.id)).map(identifier);
    if (this.blueprintIds.length === 0) throw new KasminaConfigError({ reason: "bad_config", message: "a Kasmina layer needs at least one blueprint kind" });
    this.kinds = this.blueprintIds.map((id, local) => {
      const index = requireBlueprint(id);
      this.localKind.set(index, local);
      return blueprintAt(index)!;
    });
    if (this.kinds.every((k) => sourceOf(k) === "chunk")) this.layoutList = this.kinds.map((k) => bankLayout(k, this.chunk));
    this.defaultBlueprint = args.defaultBlueprint ? identifier(args.defaultBlueprint) : this.blueprintIds.includes("residual_mlp") ? "residual_mlp" : this.blueprintIds[0]!;
    const defaultKind = this.localKind.get(requireBlueprint(this.defaultBlueprint));
    if (defaultKind === undefined) {
      throw new KasminaConfigError({ reason: "unknown_blueprint", message: `default blueprint "${this.defaultBlueprint}" is not among this layer's blueprints` });
    }
    this.defaultKind = defaultKind;
    this.layerId = args.layerId ? identifier(args.layerId) : this.name;
    if (!LAYER_ID.test(this.layerId)) {
      throw new KasminaConfigError({ reason: "bad_layer_id", message: `layer id "${this.layerId}" must match ${LAYER_ID}` });
    }
    this.reconstructionWeight = args.reconstructionWeight ?? 1;
    this.seed = args.seed ?? undefined; // a config read back from JSON says null
    this.table = args.table ?? new StateTable(numSeeds);
    if (this.table.numSeeds !== numSeeds) {
      throw new KasminaConfigError({ reason: "bad_seed_count", message: `the state table has ${this.table.numSeeds} seeds, the layer ${numSeeds}` });
    }
    const layer = this;
    this.seedBanks = {
      get layouts() {
        return layer.layouts;
      },
      bank: (k) => this.banks[k]!.read() as tf.Tensor2D,
      anchor: (k) => this.anchors[k]!.read() as tf.Tensor2D,
    };
  }

  /** The layer's input width, known once built (null before). */
  get inputDim(): number | null {
    return this.builtInputDim;
  }

  /** One layout per held kind, in `blueprintIds` order. A layer holding an input-reading kind has them once built. */
  get layouts(): readonly BankLayout[] {
    if (this.layoutList) return this.layoutList;
    throw new KasminaConfigError({
      reason: "bad_config",
      message: `layer ${this.name} holds a blueprint kind that reads its input: its bank layouts are known once it is built`,
    });
  }

  override build(inputShape: Shape): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as (number | null)[];
    const inputDim = shape[shape.length - 1];
    if (shape.length !== 2 || inputDim == null) {
      throw new KasminaConfigError({ reason: "bad_input_shape", message: `a Kasmina layer takes [batch, features] with known features, got [${shape.join(", ")}]` });
    }
    this.builtInputDim = inputDim;
    this.layoutList = this.kinds.map((kind) => bankLayout(kind, this.chunk, inputDim));
    this.kernel = this.addWeight("kernel", [inputDim, this.units], "float32", initializerOf(this.kernelInitializer, this.seed), undefined, true);
    if (this.useBias) this.bias = this.addWeight("bias", [this.units], "float32", initializerOf(this.biasInitializer), undefined, true);
    this.layouts.forEach((layout) => {
      const shapeOf = [this.numSeeds, layout.width];
      const bank = this.addWeight(`blueprints_${layout.kind.id}`, shapeOf, "float32", initializerOf("zeros"), undefined, true);
      // The frozen copy: what seeds whose blueprint must not move read (seed-forward.ts).
      const anchor = this.addWeight(`blueprints_${layout.kind.id}_frozen`, shapeOf, "float32", initializerOf("zeros"), undefined, false);
      const fresh = freshBankRows(layout, this.numSeeds, this.nextSeed());
      bank.write(fresh);
      anchor.write(fresh);
      fresh.dispose();
      this.banks.push(bank);
      this.anchors.push(anchor);
    });
    this.inputSpec = [{ ndim: 2, axes: { [-1]: inputDim } }];
    this.built = true;
  }

  override computeOutputShape(inputShape: Shape): Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as (number | null)[];
    return [...shape.slice(0, -1), this.units] as Shape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const plan = this.seedPlan();
    return tf.tidy(() => {
      this.invokeCallHook(inputs, kwargs);
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor2D;
      const learning = kwargs?.["training"] === true || tf.engine().isTapeOn();
      const host = hostForward(x, this.kernel!.read() as tf.Tensor2D, this.bias ? (this.bias.read() as tf.Tensor1D) : null, this.activation, learning);
      const out = seedForward(host, x, plan, this.seedBanks, {
        numSeeds: this.numSeeds,
        chunk: this.chunk,
        learning,
        capture: this.capture,
        reconstructionWeight: this.reconstructionWeight,
      });
      return learning ? this.keepBanksOnTape(out) : out;
    });
  }

  /**
   * Puts every bank on the gradient path (with a zero gradient where no seed uses it). tfjs's
   * stateful optimizers (Adam, Momentum, RMSProp...) key their slots by the position of a
   * variable in the step's gradient list, so a bank that is used in one step and not the next
   * would shift every later slot onto the wrong variable.
   */
  private keepBanksOnTape(out: tf.Tensor2D): tf.Tensor2D {
    const total = tf.addN(this.banks.map((bank) => tf.sum(bank.read())));
    return injectLoss(out, tf.mul(total, 0) as tf.Scalar);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      units: this.units,
      numSeeds: this.numSeeds,
      activation: this.activation,
      useBias: this.useBias,
      kernelInitializer: this.kernelInitializer,
      biasInitializer: this.biasInitializer,
      blueprints: this.blueprintIds.map((name) => ({ name })),
      defaultBlueprint: { name: this.defaultBlueprint },
      layerId: { name: this.layerId },
      reconstructionWeight: this.reconstructionWeight,
      seed: this.seed ?? null,
    };
  }

  override dispose(): ReturnType<layers.Layer["dispose"]> {
    const result = super.dispose();
    if (result.refCountAfterDispose === 0) {
      this.plan?.dispose();
      this.plan = null;
      this.capture?.dispose();
      this.capture = null;
    }
    return result;
  }

  /** Registry index -> this layer's bank, or -1 when the layer holds none for it. */
  kindOf = (blueprintIndex: number): number => (blueprintIndex < 0 ? this.defaultKind : (this.localKind.get(blueprintIndex) ?? -1));

  supportsBlueprint(id: string): boolean {
    return this.blueprintIds.includes(id);
  }

  /** Telemetry for the next pass: its forward (and backward, when a gradient is taken) statistics are recorded. */
  armTelemetry(): void {
    this.capture?.dispose();
    this.capture = new TelemetryCapture(this.numSeeds);
  }

  /** The recorded `[seeds, columns]` tensor (the caller disposes it), or null when nothing was armed. Disarms. */
  takeTelemetry(): tf.Tensor2D | null {
    const capture = this.capture;
    this.capture = null;
    return capture ? capture.assemble() : null;
  }

  /**
   * Parameters as a user counts them: the host's kernel and bias, plus the inference
   * parameters (blueprint-cost.ts) of every seed whose blueprint its state blends into the
   * output (SEED_ROLES alpha other than 0: GRAFTING, from its first step, through FOSSILIZED).
   * Banks of seeds that blend nothing are memory, not model, and do not count; neither does
   * an ablation (`ablate`), which is a measurement, not a change of the model.
   */
  parameterCount(): { host: number; blueprints: number; total: number } {
    this.ensureBuilt();
    const inputDim = this.inputDim!;
    const host = inputDim * this.units + (this.useBias ? this.units : 0);
    let blueprints = 0;
    for (let s = 0; s < this.numSeeds; s++) {
      if (!blendsInState(this.table.state[s]!)) continue;
      const kind = this.kindOf(this.table.blueprint[s]!);
      if (kind >= 0) blueprints += blueprintParameterCount(this.kinds[kind]!, this.chunk, inputDim);
    }
    return { host, blueprints, total: host + blueprints };
  }

  /**
   * Runs `seeds` at alpha 0 (the host alone in their chunks) until cleared with null, without
   * touching the state table: a held-out measurement of what each seed adds (seed-evaluator.ts)
   * must not look like a transition to the control plane, nor reset a grafting ramp. Costs one
   * plan rebuild (the plan's cache key includes the ablation), never a bank settle.
   */
  ablate(seeds: readonly number[] | null): void {
    if (seeds === null || seeds.length === 0) {
      this.ablation = null;
      return;
    }
    const mask = new Uint8Array(this.numSeeds);
    for (const s of seeds) {
      if (!Number.isInteger(s) || s < 0 || s >= this.numSeeds) throw new RangeError(`seed ${s} is outside 0..${this.numSeeds - 1}`);
      mask[s] = 1;
    }
    const sorted = [...new Set(seeds)].sort((a, b) => a - b);
    this.ablation = { seeds: sorted, mask, key: sorted.join(",") };
  }

  /** The seeds `ablate` set, ascending, or null. */
  get ablated(): readonly number[] | null {
    return this.ablation?.seeds ?? null;
  }

  /**
   * The plan for the table's current version. When states or blueprints changed since the last
   * plan, first settles the banks: rows of seeds whose blueprint learned are copied to the
   * frozen anchor (and the anchor's to the bank for the others, dropping any drift an optimizer
   * caused), and released seeds get fresh rows. Runs on table changes only, never per step.
   */
  seedPlan(): SeedPlan {
    const ablation = this.ablation?.key ?? "";
    if (this.plan && this.plan.spec.version === this.table.version && this.planAblation === ablation) return this.plan;
    this.ensureBuilt();
    const spec = planSeeds(this.table, this.kindOf, this.ablation?.mask ?? null);
    if (this.basis) {
      const { structural, release } = releasedSince(this.basis, this.table);
      if (structural) {
        this.settleBanks(this.basis.learns, release);
        this.basis = planBasis(this.table);
      }
    } else {
      this.basis = planBasis(this.table);
    }
    this.plan?.dispose();
    this.plan = materializePlan(spec);
    this.planAblation = ablation;
    return this.plan;
  }

  /** Blueprint parameters of `seeds`, one Float32Array per bank (`seeds.length * width`, seed-major). */
  readSeedParams(seeds: readonly number[]): Float32Array[] {
    this.seedPlan();
    return this.layouts.map((layout, k) => {
      const all = this.authoritative(k);
      const out = new Float32Array(seeds.length * layout.width);
      seeds.forEach((seed, i) => out.set(all.subarray(seed * layout.width, (seed + 1) * layout.width), i * layout.width));
      return out;
    });
  }

  /**
   * Puts seeds back as they were: parameters (as `readSeedParams` returned them) and table rows.
   * The restored table becomes the new basis, so nothing restored is released on the next pass.
   */
  restoreSeeds(seeds: readonly number[], params: readonly Float32Array[], rows: readonly SeedRow[]): void {
    this.seedPlan();
    this.layouts.forEach((layout, k) => {
      const all = this.authoritative(k);
      seeds.forEach((seed, i) => all.set(params[k]!.subarray(i * layout.width, (i + 1) * layout.width), seed * layout.width));
      const next = tf.tensor2d(all, [this.numSeeds, layout.width]);
      this.banks[k]!.write(next);
      this.anchors[k]!.write(next);
      next.dispose();
    });
    seeds.forEach((seed, i) => this.table.write(seed, rows[i]!));
    this.basis = planBasis(this.table);
    this.seedPlan();
  }

  private ensureBuilt(): void {
    if (!this.built) throw new KasminaConfigError({ reason: "bad_config", message: `layer ${this.name} is not built yet: apply it to an input first` });
  }

  /** The bank as the forward pass sees it: bank rows where the seed learns, anchor rows elsewhere. */
  private authoritative(kind: number): Float32Array {
    const learns = this.basis!.learns;
    return tf.tidy(() => {
      const mask = tf.tensor2d(Float32Array.from(learns), [this.numSeeds, 1]);
      return tf.add(tf.mul(this.banks[kind]!.read(), mask), tf.mul(this.anchors[kind]!.read(), tf.sub(1, mask))).dataSync() as Float32Array;
    }).slice();
  }

  private settleBanks(learnedBefore: Uint8Array, release: Uint8Array): void {
    const anyRelease = release.some((r) => r === 1);
    this.layouts.forEach((layout, k) => {
      const fresh = anyRelease ? freshBankRows(layout, this.numSeeds, this.nextSeed()) : null;
      const next = tf.tidy(() => {
        const learned = tf.tensor2d(Float32Array.from(learnedBefore), [this.numSeeds, 1]);
        const settled = tf.add(tf.mul(this.banks[k]!.read(), learned), tf.mul(this.anchors[k]!.read(), tf.sub(1, learned)));
        if (!fresh) return settled;
        const released = tf.tensor2d(Float32Array.from(release), [this.numSeeds, 1]);
        return tf.add(tf.mul(fresh, released), tf.mul(settled, tf.sub(1, released)));
      });
      this.banks[k]!.write(next);
      this.anchors[k]!.write(next);
      next.dispose();
      fresh?.dispose();
    });
  }

  private nextSeed(): number | undefined {
    return this.seed === undefined ? undefined : this.seed + this.releases++;
  }
}

tf.serialization.registerClass(KasminaLayer);
