/**
 * The grown arm across processes (`esper demo --redis`): the same host, data and batches as the
 * in-process arm (growth.ts), but the layers are owned by `esper worker` processes and steered by
 * an `esper tamiyo` process; this process only trains. Its Kasmina layers follow the layers' event
 * streams (followLayers), and it reports ticks, guard metrics, held-out measurements and
 * telemetry on the layers' telemetry streams, where the workers and Tamiyo read them. Tamiyo
 * decides at the trainer's pace (`--decide-every-ticks`), not the clock's, so the run grows as the
 * in-process one does, whatever the speed of either side.
 */
import { Effect, Exit, Scope } from "effect";
import type { Bus } from "../bus/bus.ts";
import { followLayers, type LayerFollowers } from "../runtime/layer-follower.ts";
import { layerSpecOf, trainerHooks } from "../runtime/trainer-hooks.ts";
import { makeTelemetryPublisher } from "../telemetry/publisher.ts";
import type { DecisionLine } from "./cluster.ts";
import { grownResult, stepsPerEpochOf, trainGrown, type GrowthConfig, type GrownResult, type Progress } from "./growth.ts";
import { RunJournal, type JournalDecision } from "./journal.ts";
import type { DigitSplit } from "./mnist.ts";
import { buildHost } from "./model.ts";

/** Where the remote layers are, and what the trainer hears of Tamiyo. */
export interface RemoteLayers {
  readonly bus: Bus;
  readonly namespace: string;
  /** Tamiyo's decision lines (Cluster.decisions). */
  readonly decisions: (listener: (line: DecisionLine) => void) => () => void;
  /** Called after every training step, once its reports went out (the chaos test's faults); awaited. */
  readonly afterStep?: (step: number) => Promise<void>;
}

/** Tamiyo's rounds come every this many ticks: the in-process arm's decideEvery, in ticks. */
export const decideEveryTicksOf = (config: GrowthConfig): number => Math.max(1, Math.round(config.decideEvery / Math.max(1, config.tickEvery)));

/** A decision line as the journal keeps it, or null for an answer (or a line of another shape). */
const decisionOf = (line: DecisionLine): JournalDecision | null =>
  typeof line["command"] === "string" && typeof line["action"] === "string" && typeof line["layer"] === "string"
    ? {
        commandId: line["command"],
        kind: String(line["kind"] ?? "") as JournalDecision["kind"],
        layerId: line["layer"],
        seedId: typeof line["seed"] === "number" ? line["seed"] : null,
        action: line["action"],
        reason: String(line["reason"] ?? ""),
        numbers: (line["numbers"] ?? {}) as Readonly<Record<string, number>>,
      }
    : null;

export const runGrownRemote = async (data: DigitSplit, config: GrowthConfig, remote: RemoteLayers, progress: Progress = {}): Promise<GrownResult> => {
  const network = buildHost(config.seed);
  const scope = Scope.makeUnsafe();
  const perEpoch = stepsPerEpochOf(config);
  let step = 0;
  const journal = new RunJournal(network, () => step / perEpoch);
  const decided = new Map<string, JournalDecision>();
  const unsubscribe = remote.decisions((line) => {
    const decision = decisionOf(line);
    if (decision) {
      decided.set(decision.commandId, decision);
      const entry = journal.decision(decision);
      if (entry) progress.onDecision?.(entry);
      return;
    }
    // An answer: it fills in the decision it answers, if this run saw it made.
    const known = typeof line["command"] === "string" ? decided.get(line["command"]) : undefined;
    if (known && line["outcome"] && typeof line["outcome"] === "object") journal.decision({ ...known, outcome: line["outcome"] as NonNullable<JournalDecision["outcome"]> });
  });
  try {
    const open = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Scope.provide(effect, scope));
    const followers: LayerFollowers = await open(
      followLayers(
        remote.bus,
        network.layers.map((l) => layerSpecOf(l)),
        {
          namespace: remote.namespace,
          source: "demo.trainer",
          announceAs: "demo-trainer",
          onApplied: (event) => (event.message_type === "StateTransitionEvent" ? journal.transition(event) : journal.blueprint(event.layer_id, event.seed_id, event.blueprint_id)),
        },
      ),
    );
    const publisher = await open(makeTelemetryPublisher(remote.bus, { namespace: remote.namespace, source: "demo.telemetry", batchWindowMs: 0 }));
    // A tick goes out after the telemetry written before it: the tick is what makes Tamiyo decide, on all of it.
    const reports = {
      tick: async (layerId: string, epochs?: number) => {
        await Effect.runPromise(publisher.flush);
        await followers.tick(layerId, epochs);
      },
      reportMetrics: followers.reportMetrics,
    };
    const hooks = trainerHooks(reports, { telemetry: publisher.sink });
    const run = await trainGrown(network, data, config, reports, hooks, progress, async (s, trainer, heldOut) => {
      step = s;
      // Measured before the step's tick, so the round that tick starts reads the measurement.
      if (s % config.measureEvery === 0) await heldOut.measure();
      await trainer.afterStep();
      await hooks.settled();
      await remote.afterStep?.(s);
    });
    return grownResult(run, journal, network);
  } finally {
    unsubscribe();
    await Effect.runPromise(Scope.close(scope, Exit.void));
    network.model.dispose();
  }
};
