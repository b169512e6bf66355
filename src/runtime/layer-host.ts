/**
 * Hosts one layer: makes its seed actors and its layer actor, hands each command to the layer
 * actor (machines/layer.ts decides), gathers what the machines say while it is handled, and turns
 * that into the command's answer (answer.ts, a pure function). It also mirrors the seeds into the
 * state table the data plane reads, and restarts a seed that crashed.
 *
 * Everything here is synchronous: XState delivers an event to the layer and the layer's sends to
 * its seeds inside one `send`, so by the time `apply` returns, the answer is complete.
 *
 * Seeds are root actors made with XState's public createActor (from a persisted snapshot when
 * restored), held by the layer, stopped with their public `stop()`. XState itself has no
 * supervision: a seed that throws is dead, and is restarted here from its snapshot before the
 * event that made it throw, so the failing command is the only casualty.
 */
import { createActor, type Actor, type InspectionEvent, type Observer } from "xstate";
import { guardConfig, type GuardConfig, type GuardOverrides, type SeedState } from "../../machines/lifecycle.ts";
import { layerMachine, seedActorId, type LayerEmitted, type LayerResult } from "../../machines/layer.ts";
import {
  epochsInState,
  persistSeed,
  seedMachine,
  seedSnapshotOf,
  type BlueprintAnswer,
  type PersistedSeed,
  type SeedActorRef,
  type SeedMachine,
  type SeedOutcome,
} from "../../machines/seed.ts";
import type { Metrics } from "../../machines/seed-rules.ts";
import { StateTable } from "../kasmina/state-table.ts";
import { MAX_SOURCE_LENGTH } from "../protocol/limits.ts";
import type { BatchableCommand, Command } from "../protocol/messages.ts";
import { answerOf, resultFor, seedIdOf, transitionsOf, type Answer, type Crash, type Said, type Situation } from "./answer.ts";
import { blueprintUpdatesOf, layerEventOf, orderOf } from "./orders.ts";

/** What a `LayerHost` is made of. `startSystem` makes its hosts from each `LayerSpec`; make one yourself to drive a layer directly. */
export interface LayerHostOptions {
  /** The layer's id, stamped on every answer and event it writes. */
  readonly layerId: string;
  /** Number of seed actors (ids 0 to numSeeds - 1); a `table` given must have as many, or the constructor throws a RangeError. */
  readonly numSeeds: number;
  /** Validator thresholds for the seeds; what is not given keeps its default (DEFAULT_GUARDS). */
  readonly guards?: GuardOverrides;
  /** The table the data plane reads; one is made when not given. */
  readonly table?: StateTable;
  /** Seed logic (tests provide a faulty one to exercise supervision). Default: seedMachine. */
  readonly seedLogic?: SeedMachine;
  /** A seed crashed and was restarted from its last snapshot. */
  readonly onSeedRestart?: (seedId: number, error: unknown, restoredState: SeedState) => void;
  /** Receives the XState inspection events of the layer actor and every seed actor (e.g. `@statelyai/inspect`'s `inspect`). */
  readonly inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /** `source` of the messages the layer writes, at most 256 characters (else a RangeError). Default `esper.layer.{layerId}`. */
  readonly source?: string;
  /** Maps a blueprint id to the integer the state table stores (the data plane's registry). Default: -1 for none, else first-seen order. */
  readonly blueprintIndex?: (blueprintId: string | null) => number;
}

/** What the store holds of a layer besides its seeds (P.meta.layer.{L}). */
export interface LayerRecord {
  readonly epoch: number;
  /** The reason of an emergency stop in force, or null. */
  readonly stopReason: string | null;
  /** The newest leading Tamiyo's fencing token the layer has seen (0: none); absent in records written before leaders. */
  readonly leaderToken?: number;
}

/** Whether two records say the same (a missing leader token is 0). */
export const sameRecord = (a: LayerRecord, b: LayerRecord): boolean =>
  a.epoch === b.epoch && a.stopReason === b.stopReason && (a.leaderToken ?? 0) === (b.leaderToken ?? 0);

/** A command the host could not process (a bug, not an answer): why. */
export interface Failed {
  readonly failed: string;
}

/** A command's answer, and the seeds whose snapshots it changed (to be persisted with it). */
export interface Applied extends Answer {
  readonly changed: ReadonlySet<number>;
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/**
 * One layer: its layer actor, its seed actors and the state table they keep, driven synchronously.
 * `apply(command)` returns the command's one CommandResult, the transitions it caused and the seeds
 * it changed; `tick` and `reportMetrics` feed the guards. `actor` and `seedActor(id)` are the live
 * XState actors, to watch (`subscribe`, `waitFor`), not to send to. A seed that throws is restarted
 * from its snapshot. `stop()` stops every actor. In a system, `EsperSystem.layer(id)` returns it.
 */
export class LayerHost {
  readonly layerId: string;
  readonly numSeeds: number;
  readonly table: StateTable;
  readonly source: string;
  private readonly guards: GuardConfig;
  private readonly seedLogic: SeedMachine;
  private readonly blueprintIndex: (blueprintId: string | null) => number;
  private layer!: Actor<typeof layerMachine>;
  /** What the machines said while the current event was handled. */
  private refusals: LayerResult[] = [];
  private outcomes: SeedOutcome[] = [];
  private blueprints: BlueprintAnswer[] = [];
  private crashes: Crash[] = [];
  /** Seeds whose snapshot changed since `takeChanged` last looked. */
  private changed = new Set<number>();
  private restarts = 0;

  constructor(private readonly options: LayerHostOptions, restored?: { readonly seeds: ReadonlyMap<number, PersistedSeed>; readonly record: LayerRecord }) {
    this.layerId = options.layerId;
    this.numSeeds = options.numSeeds;
    this.table = options.table ?? new StateTable(options.numSeeds);
    if (this.table.numSeeds !== options.numSeeds) {
      throw new RangeError(`state table has ${this.table.numSeeds} seeds, layer ${options.layerId} has ${options.numSeeds}`);
    }
    this.source = options.source ?? `esper.layer.${options.layerId}`;
    // Every answer carries it: a source no message may hold would make every answer unbuildable.
    if (this.source.length > MAX_SOURCE_LENGTH) throw new RangeError(`source of layer ${options.layerId} has ${this.source.length} characters; at most ${MAX_SOURCE_LENGTH}`);
    this.guards = guardConfig(options.guards);
    this.seedLogic = options.seedLogic ?? seedMachine;
    this.blueprintIndex = options.blueprintIndex ?? internBlueprints();
    this.install(restored?.seeds ?? new Map(), restored?.record ?? { epoch: 0, stopReason: null });
    this.takeChanged();
  }

  /** The live layer actor (XState's own `subscribe`, `getSnapshot`, `waitFor` work on it; watch it, send commands through the layer). */
  get actor(): Actor<typeof layerMachine> {
    return this.layer;
  }

  /**
   * The live actor of one seed, for XState's own `subscribe`, `getSnapshot` and `waitFor`.
   * Watch it, do not send to it: commands go through the layer (`send`, `transition`), which
   * screens them, answers them and keeps the state table. A seed restarted after it crashed is a
   * new actor (the `seed_restarted` system event says so): ask again.
   */
  seedActor(seedId: number): Actor<SeedMachine> {
    const ref = this.layer.getSnapshot().context.seeds[seedId];
    if (!ref) throw new RangeError(`layer ${this.layerId} has no seed ${seedId}`);
    return ref as Actor<SeedMachine>;
  }

  /** Whether a whole-layer emergency stop is in force: the layer machine's state. */
  get isStopped(): boolean {
    return this.layer.getSnapshot().matches("stopped");
  }

  /** What the store keeps of the layer itself. */
  get record(): LayerRecord {
    const { epoch, stopReason, leaderToken } = this.layer.getSnapshot().context;
    return { epoch, stopReason: this.isStopped ? stopReason : null, leaderToken };
  }

  /** How many times a crashed seed actor has been restarted since this host was made. */
  get restartCount(): number {
    return this.restarts;
  }

  /** The seed's snapshot as it is persisted, read from its live actor. */
  seed(seedId: number): PersistedSeed {
    const ref = this.layer.getSnapshot().context.seeds[seedId];
    if (!ref) throw new RangeError(`layer ${this.layerId} has no seed ${seedId}`);
    return persistSeed(ref.getSnapshot());
  }

  /** Every seed's snapshot, in seed order. */
  seeds(): readonly PersistedSeed[] {
    return this.layer.getSnapshot().context.seeds.map((ref) => persistSeed(ref.getSnapshot()));
  }

  /** Epochs `seedId` has spent in its state, at the layer's epoch count. */
  epochsInState(seedId: number): number {
    return epochsInState(this.seed(seedId).context, this.record.epoch);
  }

  /**
   * Applies one command and returns its one result, the transitions it caused, and the seeds it
   * changed. `now`: the time it is applied (ms since the epoch), recorded in the seeds' history
   * and stamped on the answer; default, the command's own timestamp (the host reads no clock).
   */
  apply(command: Command, now: number = Number.isFinite(command.timestamp) ? command.timestamp * 1000 : 0, elapsedMs = 0): Applied {
    const situation = { source: this.source, layerId: this.layerId, now, elapsedMs };
    const unknown = this.unknownBlueprint(command);
    if (unknown !== null) {
      return { ...answered(command, { refusals: [unknown], outcomes: [], blueprints: [], crashes: [], stopped: this.isStopped }, situation), changed: new Set() };
    }
    this.refusals = [];
    this.outcomes = [];
    this.blueprints = [];
    this.crashes = [];
    this.layer.send(layerEventOf(command, now));
    // A blueprint update changes a seed without a transition (no outcome): it is mirrored here.
    for (const update of blueprintUpdatesOf(command)) if (update.seed_id < this.numSeeds) this.mirror(update.seed_id, false);
    const said = { refusals: this.refusals, outcomes: this.outcomes, blueprints: this.blueprints, crashes: this.crashes, stopped: this.isStopped };
    this.refusals = [];
    this.outcomes = [];
    this.blueprints = [];
    this.crashes = [];
    // The layer has changed by now: whatever the answer comes to, the changed seeds go with it.
    return { ...answered(command, said, situation), changed: this.takeChanged() };
  }

  /**
   * Applies commands in order, as `apply` applies each, and returns their answers (one per
   * command, in order) and the seeds they changed together. Consecutive commands for one seed or
   * every seed (lifecycle transitions, blueprint updates) go to the layer as one `orders` event,
   * so the layer takes one step for a run of them rather than one each (a bridge applies what it
   * read together this way). Their message_ids must differ (a bridge answers a copy as a duplicate
   * instead). A command the host could not process (a bug: a registry that throws) is answered
   * `{ failed }` and the others go on. One difference from `apply` one by one: a seed that crashes
   * in a run misses the orders after it in that run (they are answered `internal`, not applied).
   */
  applyAll(commands: readonly Command[], now: number, elapsedMs = 0): { readonly answers: readonly (Answer | Failed)[]; readonly changed: ReadonlySet<number> } {
    const answers: (Answer | Failed)[] = new Array(commands.length);
    const changed = new Set<number>();
    const take = (seeds: ReadonlySet<number>) => {
      for (const seedId of seeds) changed.add(seedId);
    };
    const failed = (error: unknown): Failed => {
      take(this.takeChanged());
      return { failed: errorText(error) };
    };
    // Whether each may go in a run: asked first, so that a throw is one command's alone.
    const inRun = commands.map((c, i) => {
      try {
        return this.runnable(c);
      } catch (error) {
        answers[i] = failed(error);
        return false;
      }
    });
    for (let i = 0; i < commands.length; ) {
      let end = i;
      while (end < commands.length && inRun[end]) end++;
      if (end - i >= 2) {
        try {
          const run = this.applyRun(commands.slice(i, end), now, elapsedMs);
          for (let k = 0; k < run.answers.length; k++) answers[i + k] = run.answers[k]!;
          take(run.changed);
        } catch (error) {
          const why = failed(error);
          for (let k = i; k < end; k++) answers[k] = why;
        }
        i = end;
        continue;
      }
      if (answers[i] === undefined) {
        try {
          const applied = this.apply(commands[i]!, now, elapsedMs);
          answers[i] = applied;
          take(applied.changed);
        } catch (error) {
          answers[i] = failed(error);
        }
      }
      i++;
    }
    return { answers, changed };
  }

  /** Epochs elapsed for every seed: one event, whatever the layer's size. Returns the seeds changed (none). */
  tick(epochs = 1): ReadonlySet<number> {
    if (!(Number.isInteger(epochs) && epochs > 0)) return this.takeChanged();
    this.layer.send({ type: "tick", epochs });
    this.table.tick(epochs);
    return this.takeChanged();
  }

  /** The newest leading Tamiyo's token (her lease's counter): orders of older leaders are refused from now on. */
  noteLeader(token: number): void {
    if (Number.isInteger(token) && token > 0) this.layer.send({ type: "leader", token });
  }

  /** Metrics for some seeds (reconstruction_loss, performance_delta...): one event per window. Returns the seeds changed. */
  reportMetrics(bySeed: ReadonlyMap<number, Metrics>): ReadonlySet<number> {
    const known = new Map([...bySeed].filter(([seedId]) => Number.isInteger(seedId) && seedId >= 0 && seedId < this.numSeeds));
    if (known.size > 0) this.layer.send({ type: "metrics", bySeed: known });
    return this.takeChanged();
  }

  /** An error the data plane saw in one seed: counted in its context and its state-table row (the cull validator reads it). */
  reportError(seedId: number): ReadonlySet<number> {
    this.layer.send({ type: "seed.error", seedId });
    if (seedId >= 0 && seedId < this.numSeeds) this.mirror(seedId, false);
    return this.takeChanged();
  }

  /**
   * Puts the layer back to what the store holds: the given seeds from their snapshots (the others
   * stay as they are), and the layer's epoch count and stop. The replaced seed actors are stopped.
   */
  restore(seeds: ReadonlyMap<number, PersistedSeed>, record: LayerRecord): void {
    const live = this.layer.getSnapshot().context.seeds;
    const fresh = new Map<number, SeedActorRef>();
    for (const [seedId, persisted] of seeds) if (seedId >= 0 && seedId < this.numSeeds) fresh.set(seedId, this.makeSeed(seedId, persisted));
    if (fresh.size > 0) this.layer.send({ type: "seeds.replaced", seeds: fresh });
    const now = this.record;
    if (!sameRecord(now, record) || this.isStopped !== (record.stopReason !== null)) {
      this.layer.send({ type: "restored", epoch: record.epoch, stopReason: record.stopReason, leaderToken: record.leaderToken ?? 0 });
    }
    for (const seedId of fresh.keys()) (live[seedId] as Actor<SeedMachine>).stop();
    // Alpha only for the seeds put back: for the others it is the data plane's (a GRAFTING ramp).
    for (let seedId = 0; seedId < this.numSeeds; seedId++) this.mirror(seedId, fresh.has(seedId));
    this.takeChanged();
  }

  /** Stops the layer actor and every seed actor; the state table keeps its last rows. */
  stop(): void {
    stopLayer(this.layer);
  }

  /** Seeds changed since the last look, and starts a new look (`apply` and the others return theirs; a caller that caught a throw asks here). */
  takeChanged(): ReadonlySet<number> {
    const changed = this.changed;
    this.changed = new Set();
    return changed;
  }

  /** A command that may go in a run: one seed or every seed, a lifecycle transition or a blueprint the registry knows. */
  private runnable(command: Command): boolean {
    return (
      command.message_type === "LifecycleTransitionCommand" ||
      (command.message_type === "BlueprintUpdateCommand" && this.unknownBlueprint(command) === null)
    );
  }

  /** A run of runnable commands as one `orders` event; what the machines said is handed to each command by its id. */
  private applyRun(commands: readonly Command[], now: number, elapsedMs: number): { readonly answers: Answer[]; readonly changed: ReadonlySet<number> } {
    const situation = { source: this.source, layerId: this.layerId, now, elapsedMs };
    this.refusals = [];
    this.outcomes = [];
    this.blueprints = [];
    this.crashes = [];
    this.layer.send({ type: "orders", orders: commands.map((c) => orderOf(c as BatchableCommand, now)) });
    for (const c of commands) if (c.message_type === "BlueprintUpdateCommand" && c.seed_id < this.numSeeds) this.mirror(c.seed_id, false);
    const { refusals, outcomes, blueprints, crashes } = this;
    this.refusals = [];
    this.outcomes = [];
    this.blueprints = [];
    this.crashes = [];
    const stopped = this.isStopped;
    const heard = new Map<string, { refusals: LayerResult[]; outcomes: SeedOutcome[]; blueprints: BlueprintAnswer[] }>();
    const of = (commandId: string | null) => {
      if (commandId === null) return undefined;
      let h = heard.get(commandId);
      if (h === undefined) heard.set(commandId, (h = { refusals: [], outcomes: [], blueprints: [] }));
      return h;
    };
    for (const r of refusals) of(r.commandId)?.refusals.push(r);
    for (const o of outcomes) of(o.commandId)?.outcomes.push(o);
    for (const b of blueprints) of(b.commandId)?.blueprints.push(b);
    const answers = commands.map((command) => {
      const h = heard.get(command.message_id);
      const seedId = seedIdOf(command);
      // A crash is this command's when a seed it was sent to did not answer it.
      const answers = (h?.outcomes.length ?? 0) + (h?.blueprints.length ?? 0) + (h?.refusals.length ?? 0);
      const unanswered = seedId === null ? answers < this.numSeeds : answers === 0;
      const mine = !unanswered || crashes.length === 0 ? [] : crashes.filter((c) => seedId === null || c.seedId === seedId);
      return answered(command, { refusals: h?.refusals ?? [], outcomes: h?.outcomes ?? [], blueprints: h?.blueprints ?? [], crashes: mine, stopped }, situation);
    });
    return { answers, changed: this.takeChanged() };
  }

  /** Makes the seed actors (from `stored` where it has them) and the layer actor holding them, and mirrors them into the table. */
  private install(stored: ReadonlyMap<number, PersistedSeed>, record: LayerRecord): void {
    const seeds = Array.from({ length: this.numSeeds }, (_, seedId) => this.makeSeed(seedId, stored.get(seedId)));
    const layer = createActor(layerMachine, {
      input: { layerId: this.layerId, numSeeds: this.numSeeds, guards: this.guards, seeds, epoch: record.epoch, leaderToken: record.leaderToken ?? 0 },
      ...(this.options.inspect ? { inspect: this.options.inspect } : {}),
    });
    layer.on("result", (refusal: LayerEmitted) => void this.refusals.push(refusal));
    layer.start();
    if (record.stopReason !== null) layer.send({ type: "restored", epoch: record.epoch, stopReason: record.stopReason, leaderToken: record.leaderToken ?? 0 });
    this.layer = layer;
    for (let seedId = 0; seedId < this.numSeeds; seedId++) this.mirror(seedId, true);
  }

  private makeSeed(seedId: number, persisted: PersistedSeed | undefined): SeedActorRef {
    // With a snapshot, XState starts the actor there and leaves the input unused.
    const seed: Actor<SeedMachine> = createActor(this.seedLogic, {
      id: seedActorId(seedId),
      input: { seedId, config: this.guards },
      ...(persisted === undefined ? {} : { snapshot: seedSnapshotOf(this.seedLogic, persisted, this.guards) }),
      ...(this.options.inspect ? { inspect: this.options.inspect } : {}),
    });
    seed.on("outcome", (outcome) => {
      this.outcomes.push(outcome);
      if (outcome.ok) this.mirror(outcome.seedId, true);
    });
    seed.on("blueprint.answer", (answer) => void this.blueprints.push(answer));
    seed.subscribe({ next: () => void this.changed.add(seedId), error: (error) => this.restartSeed(seedId, seed, error) });
    seed.start();
    return seed;
  }

  /**
   * A seed that threw is dead (XState has no supervision). Its snapshot still holds what it held
   * before the failing event: a new actor starts from there, and the layer is given its ref.
   */
  private restartSeed(seedId: number, dead: SeedActorRef, error: unknown): void {
    const before = persistSeed(dead.getSnapshot());
    this.restarts++;
    const fresh = this.makeSeed(seedId, before);
    this.layer.send({ type: "seeds.replaced", seeds: new Map([[seedId, fresh]]) });
    this.crashes.push({ seedId, error: errorText(error), restoredState: before.state });
    this.changed.add(seedId);
    this.options.onSeedRestart?.(seedId, error, before.state);
  }

  /**
   * Re-reads one seed into the state table. Alpha is written only when the seed changed state
   * (its value on entry): between transitions the data plane owns it (a GRAFTING ramp).
   */
  private mirror(seedId: number, transitioned: boolean): void {
    const { seeds, epoch } = this.layer.getSnapshot().context;
    const ref = seeds[seedId];
    const snapshot = ref?.getSnapshot();
    if (snapshot === undefined || snapshot.status !== "active") return;
    const c = snapshot.context;
    const row = {
      state: snapshot.value as SeedState,
      blueprint: this.blueprintIndex(c.blueprintId),
      epochsInState: epochsInState(c, epoch),
      strategy: c.strategy,
      errorCount: c.errorCount,
    };
    this.table.write(seedId, transitioned ? { ...row, alpha: c.alpha } : row);
  }

  /** A blueprint id the data plane's registry does not know is refused before any seed sees it. */
  private unknownBlueprint(command: Command): LayerResult | null {
    for (const c of blueprintUpdatesOf(command)) {
      if (this.blueprintIndex(c.blueprint_id) < 0) {
        return {
          type: "result",
          commandId: command.message_id,
          seedId: c.seed_id,
          ok: false,
          code: "invalid_message",
          error: `unknown blueprint_id ${JSON.stringify(c.blueprint_id)}: layer ${this.layerId} has no such blueprint; register it (registerBlueprint) and list it in the layer's blueprints, or use one it holds`,
          details: {},
        };
      }
    }
    return null;
  }
}

/**
 * The answer, which the host returns whatever happens: the command has reached the layer and
 * may have changed it, so throwing here would lose the change with the answer. A message the
 * builders refuse (a bug: answers are bounded by construction) becomes an `internal` answer that
 * says so, and the transitions that could be built are kept.
 */
const answered = (command: Command, said: Said, situation: Situation): Answer => {
  try {
    return answerOf(command, said, situation);
  } catch (error) {
    let transitions: Answer["transitions"] = [];
    try {
      transitions = transitionsOf(command, said, situation);
    } catch {
      // Not even the transitions could be built: the result below says what happened.
    }
    const moved = said.outcomes.filter((o) => o.ok).length;
    return {
      result: resultFor(command, situation, seedIdOf(command), "internal", `the layer handled this command (${moved} seed(s) moved) but its answer could not be built: ${clipText(errorText(error))}`, { moved }),
      transitions,
    };
  }
};

const clipText = (text: string): string => (text.length <= 1_000 ? text : `${text.slice(0, 1_000)}…`);

/** Stops a layer actor and the seed actors it holds (root actors: the public stop). O(n). */
const stopLayer = (layer: Actor<typeof layerMachine>): void => {
  const seeds = layer.getSnapshot().context.seeds;
  layer.stop();
  for (const seed of seeds) (seed as Actor<SeedMachine>).stop();
};

/** First-seen numbering of blueprint ids, for hosts without a data-plane registry. */
const internBlueprints = () => {
  const ids = new Map<string, number>();
  return (blueprintId: string | null): number => {
    if (blueprintId === null) return -1;
    let index = ids.get(blueprintId);
    if (index === undefined) ids.set(blueprintId, (index = ids.size));
    return index;
  };
};
