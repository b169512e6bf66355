/**
 * The whole control plane in one process, on the embedded bus: one LayerHost (layer actor + its
 * seed actors) and one mailbox bridge per layer, consuming from a MemoryBus (or any Bus given),
 * and a client that sends commands and follows the layers' event streams. The same bridge runs
 * in `esper worker` over Redis, so in-process and distributed behave alike: commands travel on
 * the layers' control streams, epoch ticks and guard metrics on their telemetry streams.
 * Its lifetime is an Effect Scope: closing it stops the bridges, the actors and the inspector,
 * in reverse order of acquisition.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { Clock, Data, Effect, Schedule, type Scope } from "effect";
import type { GuardOverrides, SeedState } from "../../machines/lifecycle.ts";
import type { Metrics } from "../../machines/seed-rules.ts";
import type { Bus } from "../bus/bus.ts";
import { MemoryBus } from "../bus/memory-bus.ts";
import { runLayerBridge, type BridgeStats, type LayerBridge } from "../bridge/bridge.ts";
import type { Ordering } from "../bridge/options.ts";
import { makeClient } from "../client/client.ts";
import { StateTable } from "../kasmina/state-table.ts";
import { encodeEntry, encodeEntryInProcess } from "../protocol/entry.ts";
import { commandResult, emergencyStopCommand, lifecycleCommand, resumeCommand } from "../protocol/make.ts";
import { metricsSummary, trainerReport } from "./trainer-report.ts";
import type { Command, CommandResult, EmergencyStopCommand, StateTransitionEvent } from "../protocol/messages.ts";
import { LAYER_ID_PATTERN } from "../protocol/fields.ts";
import { streams, type Topology } from "../protocol/streams.ts";
import { layerKeys, type LayerKeys } from "../bridge/store.ts";
import { HOLDING_DEFAULTS, holdOnce, type Held } from "../coordination/holding.ts";
import { inspectionFrom } from "./inspection.ts";
import { LayerHost } from "./layer-host.ts";
import { openScoped, type Closeable } from "./scoped.ts";

/** One layer of a system: its id, its number of seeds, and optionally its guards and the state table its data plane reads. */
export interface LayerSpec {
  /** Layer id: letters, digits, `_` and `-`, at most 64 characters, unique within the system. */
  readonly id: string;
  /** Number of seed actors: a positive integer (it must equal the `numSeeds` of a `table` given). */
  readonly seeds: number;
  /** Validator thresholds for this layer's seeds (defaults in machines/lifecycle.ts). */
  readonly guards?: GuardOverrides;
  /** The table the data plane reads; made when not given. */
  readonly table?: StateTable;
  /** Blueprint id -> the integer the state table stores (the data plane's registry). */
  readonly blueprintIndex?: (blueprintId: string | null) => number;
}

/** What `startSystem` / `makeSystem` spawn: at least one layer, on the bus given or a fresh MemoryBus. */
export interface SystemConfig {
  /** The layers to host, at least one; each gets a LayerHost and a bridge on the bus. */
  readonly layers: readonly LayerSpec[];
  /** `source` of the messages this system writes. Default "esper". */
  readonly source?: string;
  /** Inspection target (see inspection.ts): `ws://host:port` (Stately's inspector) or `file:PATH` (JSON lines); default: ESPER_INSPECT. */
  readonly inspect?: string;
  /** The bus to run on. Default: a fresh MemoryBus (the embedded bus). */
  readonly bus?: Bus;
  /** Key namespace on the bus. Default "morphogenetic" (ESPER_NAMESPACE). */
  readonly namespace?: string;
  /**
   * The names of the layers' streams (BridgeOptions.topology): `reference` speaks to the reference
   * implementation's Python clients on their stream names. Default: ESPER_TOPOLOGY, else "esper".
   */
  readonly topology?: Topology;
  /** How each layer orders what it applies (BridgeOptions.ordering). Default partition. */
  readonly ordering?: Ordering;
}

/**
 * What `EsperSystem.subscribe` listeners hear. Transitions and results are read from the layers'
 * event streams, as a remote controller would see them; the other kinds say something went wrong.
 */
export type SystemEvent =
  /** A seed changed state (one StateTransitionEvent from a layer's event stream). */
  | { readonly type: "transition"; readonly event: StateTransitionEvent }
  /** A command's answer, from a layer's event stream (or the system's own refusal of a command for a layer it does not host). */
  | { readonly type: "result"; readonly result: CommandResult }
  /** A seed actor threw and was restarted from its last snapshot, in `state`; the command that made it throw is answered `internal`. */
  | { readonly type: "seed_restarted"; readonly layerId: string; readonly seedId: number; readonly state: SeedState; readonly error: unknown }
  /** An entry on a layer's event stream that could not be read (written by something else). */
  | { readonly type: "undecodable"; readonly layerId: string; readonly entryId: string; readonly code: string; readonly error: string }
  /** A layer stopped for good: Redis lost its data (see docs/operations.md), or another process took its lease. */
  | { readonly type: "layer_failed"; readonly layerId: string; readonly error: string };

/**
 * A `SystemConfig` that cannot be started: no layers, a layer id that is invalid or appears twice,
 * a seed count that is not a positive integer, or (on Redis) a layer another process owns (its
 * lease is held: `layer_owned`). `reason` says which and `message` how to fix it; `startSystem`
 * rejects with it (`makeSystem` fails with it).
 */
export class SystemConfigError extends Data.TaggedError("SystemConfigError")<{
  readonly reason: "invalid_layer_id" | "duplicate_layer" | "invalid_seed_count" | "no_layers" | "layer_owned";
  readonly message: string;
}> {}

/** Options of `EsperSystem.transition`, carried by the LifecycleTransitionCommand it sends. */
export interface TransitionOptions {
  /** Skip the guards' validators (epochs in state, metrics thresholds); it never adds an edge to the graph. Default false. */
  readonly force?: boolean;
  /** Why, recorded in the seed's history and its transition events (up to 256 characters). Default "". */
  readonly reason?: string;
  /** Metrics for the validators, e.g. `{ reconstruction_loss: 0.004 }`. */
  readonly metrics?: Metrics;
  /**
   * The command's `timeout_ms`: a layer that takes it in later than this after it was sent answers
   * `timeout` without applying it, and the call waits this long plus 1 s for its answer. Default 5000.
   */
  readonly timeoutMs?: number;
}

/**
 * A running system: send commands to its layers and await their answers, feed them epochs and
 * guard metrics, and watch what happens. Made by `makeSystem` (Effect) or `startSystem` (Promise).
 * Calls never reject for a refused command: the CommandResult's `code` says why.
 */
export interface EsperSystem {
  /** The ids of the layers this system hosts, in config order. */
  readonly layerIds: readonly string[];
  /** The host of one layer (its state table, seeds' snapshots); throws for an unknown id. */
  readonly layer: (layerId: string) => LayerHost;
  /** Sends any command and resolves with its one CommandResult (never rejects). */
  readonly send: (command: Command) => Promise<CommandResult>;
  /** Moves one seed, or every seed of the layer when `seedId` is null. */
  readonly transition: (layerId: string, seedId: number | null, target: SeedState, options?: TransitionOptions) => Promise<CommandResult>;
  /** Stops one layer, or every layer when `layerId` is null; applied before anything queued. */
  readonly emergencyStop: (layerId: string | null, reason: string) => Promise<readonly CommandResult[]>;
  /** Lifts a layer's emergency stop. */
  readonly resume: (layerId: string, reason?: string) => Promise<CommandResult>;
  /**
   * Epochs elapsed for every seed of a layer: one LayerHealthReport on the layer's telemetry
   * stream (its `performance_summary.epoch`, the layer's new epoch count). Resolves once the
   * layer has taken it in; never rejects.
   */
  readonly tick: (layerId: string, epochs?: number) => Promise<void>;
  /**
   * Guard metrics for some seeds, one report on the layer's telemetry stream; resolves once taken
   * in. `summary` goes in the report's performance_summary for whoever reads the stream (Tamiyo
   * reads `val_loss`); an `epoch` in it is ignored: ticks are `tick`'s.
   */
  readonly reportMetrics: (layerId: string, bySeed: Readonly<Record<number, Metrics>>, summary?: Readonly<Record<string, number>>) => Promise<void>;
  /** Every transition, result, seed restart, unreadable entry and failed layer, as it happens. Returns an unsubscribe. */
  readonly subscribe: (listener: (event: SystemEvent) => void) => () => void;
  /** How a layer's bridge is doing: entries, applied, duplicates, dead letters, commits... */
  readonly bridgeStats: (layerId: string) => BridgeStats;
}

const validate = (config: SystemConfig): Effect.Effect<void, SystemConfigError> =>
  Effect.suspend(() => {
    if (config.layers.length === 0) {
      return Effect.fail(new SystemConfigError({ reason: "no_layers", message: "a system needs at least one layer, e.g. { layers: [{ id: 'dense1', seeds: 16 }] }" }));
    }
    const seen = new Set<string>();
    for (const layer of config.layers) {
      if (!LAYER_ID_PATTERN.test(layer.id)) {
        return Effect.fail(new SystemConfigError({ reason: "invalid_layer_id", message: `layer id ${JSON.stringify(layer.id)} must match ${LAYER_ID_PATTERN} (letters, digits, _ and -, at most 64)` }));
      }
      if (seen.has(layer.id)) return Effect.fail(new SystemConfigError({ reason: "duplicate_layer", message: `layer id ${layer.id} appears twice; layer ids must be unique` }));
      seen.add(layer.id);
      if (!Number.isInteger(layer.seeds) || layer.seeds < 1) {
        return Effect.fail(new SystemConfigError({ reason: "invalid_seed_count", message: `layer ${layer.id}: seeds must be a positive integer, got ${layer.seeds}` }));
      }
    }
    return Effect.void;
  });

/**
 * Takes the layer's lease for this system and keeps renewing it in the current Scope (given up
 * when it closes); fails `layer_owned` when another process holds it. Returns the fence the
 * layer's bridge reads and commits under.
 */
const holdLayer = (bus: Bus, keys: LayerKeys, layerId: string, onLost: (why: string) => void): Effect.Effect<Extract<Held, { held: true }>, SystemConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    const held = yield* Effect.orDie(holdOnce(bus, { key: keys.lease, counter: keys.fence, name: `${hostname()}-${process.pid}`, holder: `${hostname()}-${process.pid}/system-${randomUUID().slice(0, 8)}` }, (why) => onLost(`${why}: this system serves layer ${layerId} no more`)));
    if (!held.held) {
      return yield* new SystemConfigError({
        reason: "layer_owned",
        message: `layer ${layerId} is owned by ${held.holder} (an esper worker or another system on this bus): a layer has one owner; stop that one, or let it serve the layer and send it commands with startClient`,
      });
    }
    return held;
  });

/** Spawns the system in the current Scope. */
export const makeSystem = (config: SystemConfig): Effect.Effect<EsperSystem, SystemConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* validate(config);
    const source = config.source ?? "esper";
    const clock = yield* Clock.Clock;
    const now = () => clock.currentTimeMillisUnsafe();
    const context = yield* Effect.context<never>();
    const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromiseWith(context)(effect);
    const listeners = new Set<(event: SystemEvent) => void>();
    const publish = (event: SystemEvent) => {
      for (const listener of listeners) {
        try {
          listener(event);
        } catch {
          // A listener's failure is its own: it must not break the actors or other listeners.
        }
      }
    };

    const inspection = yield* Effect.acquireRelease(
      Effect.sync(() => inspectionFrom(config.inspect ?? process.env.ESPER_INSPECT)),
      (i) => Effect.promise(() => i?.stop() ?? Promise.resolve()),
    );

    const bus = config.bus ?? new MemoryBus();
    const names = streams(config.namespace, config.topology);
    const hosts = new Map<string, LayerHost>();
    const bridges = new Map<string, LayerBridge>();
    /** Each layer's epoch count as this system has reported it. */
    const epochs = new Map<string, number>();
    for (const spec of config.layers) {
      const host = yield* Effect.acquireRelease(
        Effect.sync(
          () =>
            new LayerHost({
              layerId: spec.id,
              numSeeds: spec.seeds,
              source,
              ...(spec.guards ? { guards: spec.guards } : {}),
              ...(spec.table ? { table: spec.table } : {}),
              ...(spec.blueprintIndex ? { blueprintIndex: spec.blueprintIndex } : {}),
              ...(inspection ? { inspect: inspection.observer } : {}),
              onSeedRestart: (seedId, error, state) => publish({ type: "seed_restarted", layerId: spec.id, seedId, state, error }),
            }),
        ),
        (h) => Effect.sync(() => h.stop()),
      );
      hosts.set(spec.id, host);
      // On a shared bus (Redis) the system owns its layers as a worker does: under their leases, fenced.
      const held = bus.inProcess ? undefined : yield* holdLayer(bus, layerKeys(names, spec.id), spec.id, (why) => publish({ type: "layer_failed", layerId: spec.id, error: why }));
      const bridgeOptions = { consumer: "in-process", ...(config.namespace ? { namespace: config.namespace } : {}), topology: names.topology, ...(config.ordering ? { ordering: config.ordering } : {}), ...(held ? { fence: held.fence } : {}) };
      const bridge = yield* runLayerBridge(bus, host, bridgeOptions).pipe(Effect.orDie);
      bridges.set(spec.id, bridge);
      const watchFailed = (b: LayerBridge) =>
        Effect.forkScoped(b.failed.pipe(Effect.catch((lost) => Effect.sync(() => publish({ type: "layer_failed", layerId: spec.id, error: lost.message })))));
      yield* watchFailed(bridge);
      if (held) {
        // A bridge refused on its lease because the lease lapsed (Redis away longer than it) starts again once the holding
        // is taken up again, same fence, restoring the layer from the store; one whose lease another took stays stopped.
        const serveOn = (current: LayerBridge): Effect.Effect<void, never, Scope.Scope> =>
          Effect.gen(function* () {
            yield* current.fenced;
            const resumed = yield* held.resume.pipe(Effect.retry(Schedule.spaced(HOLDING_DEFAULTS.pollMs)), Effect.orElseSucceed(() => false));
            if (!resumed) return;
            const next = yield* runLayerBridge(bus, host, { ...bridgeOptions, generation: current.generation }).pipe(Effect.orDie);
            bridges.set(spec.id, next);
            yield* watchFailed(next);
            yield* serveOn(next);
          });
        yield* Effect.forkScoped(serveOn(bridge));
      }
      epochs.set(spec.id, host.record.epoch);
    }
    const client = yield* makeClient(bus, { ...(config.namespace ? { namespace: config.namespace } : {}), topology: names.topology });
    // Subscribers hear what the event streams carry, as a remote controller would.
    for (const layerId of hosts.keys()) {
      yield* Effect.promise(() =>
        client.events(
          layerId,
          (message) => {
            if (message.message_type === "StateTransitionEvent") publish({ type: "transition", event: message });
            else if (message.message_type === "CommandResult") publish({ type: "result", result: message });
          },
          (error, entry) => publish({ type: "undecodable", layerId, entryId: entry.id, code: error.code, error: error.message }),
        ),
      );
    }

    const hostOf = (layerId: string): LayerHost => {
      const host = hosts.get(layerId);
      if (!host) throw new RangeError(`no layer ${layerId}; this system has ${[...hosts.keys()].join(", ")}`);
      return host;
    };

    let closed = false;
    yield* Effect.addFinalizer(() => Effect.sync(() => void (closed = true)));

    const refusal = (command: Command, layerId: string, code: CommandResult["code"], error: string): CommandResult =>
      commandResult({
        source,
        timestamp: now() / 1000,
        correlation_id: command.message_id,
        layer_id: LAYER_ID_PATTERN.test(layerId) ? layerId : "unknown",
        seed_id: "seed_id" in command && typeof command.seed_id === "number" ? command.seed_id : null,
        success: false,
        code,
        error,
        execution_time_ms: 0,
      });

    /**
     * Per layer, the reports (ticks, metrics) this system published and the layer has not taken in
     * yet. A command sent after them waits for them: in process, what was said first counts first
     * (across processes, telemetry and commands are separate streams with no order between them).
     */
    const reporting = new Map<string, Promise<void>>();

    const sendToLayer = async (command: Command, layerId: string): Promise<CommandResult> => {
      if (closed) return refusal(command, layerId, "internal", "the system is closed; start a new one to send commands");
      if (!hosts.has(layerId)) {
        const result = refusal(command, layerId, "unknown_layer", `no layer ${layerId} in this system (layers: ${[...hosts.keys()].join(", ")})`);
        publish({ type: "result", result });
        return result;
      }
      const reports = reporting.get(layerId);
      if (reports !== undefined) await reports;
      return client.send(command);
    };

    const layerIdOf = (command: Command): string | null => (command.message_type === "BatchCommand" ? (command.commands[0]?.layer_id ?? null) : command.layer_id);

    const send = async (command: Command): Promise<CommandResult> => {
      const layerId = layerIdOf(command);
      if (layerId !== null) return sendToLayer(command, layerId);
      // An emergency stop without a layer reaches every layer through P.control.all; its answer gathers theirs.
      const results = await client.stopAll(command as EmergencyStopCommand, [...hosts.keys()]);
      const failed = results.find((r) => !r.success);
      return { ...results[0]!, success: !failed, code: failed?.code ?? "ok", error: failed?.error ?? null, details: { layers: results.map((r) => ({ layer_id: r.layer_id, code: r.code, details: r.details })) } };
    };

    /** One LayerHealthReport on the layer's telemetry stream, and the wait until its bridge has taken it in. */
    const report = (layerId: string, summary: Readonly<Record<string, unknown>>, health: Readonly<Record<string, Metrics>>): Promise<void> => {
      const host = hostOf(layerId);
      if (closed) return Promise.resolve();
      const message = trainerReport({ source, layerId, totalSeeds: host.numSeeds, activeSeeds: host.table.activeCount(), summary, health, nowMs: now() });
      const stream = names.telemetry(layerId);
      const fields = bus.inProcess ? encodeEntryInProcess(message, { stream, trusted: true }) : encodeEntry(message, { stream });
      const bridge = bridges.get(layerId)!;
      // Telemetry may wait in an outbox with no id (Redis away): then there is nothing to wait for.
      const taken = run(Effect.flatMap(bus.publish(stream, fields), (id) => (id === "" ? Effect.void : bridge.settled(stream, id)))).catch(() => undefined);
      const all = Promise.all([reporting.get(layerId), taken]).then(() => undefined);
      reporting.set(layerId, all);
      void all.then(() => {
        if (reporting.get(layerId) === all) reporting.delete(layerId);
      });
      return taken;
    };

    const system: EsperSystem = {
      layerIds: [...hosts.keys()],
      layer: hostOf,
      send,
      transition: (layerId, seedId, target, options = {}) =>
        send(
          lifecycleCommand({
            source,
            timestamp: now() / 1000,
            layer_id: layerId,
            seed_id: seedId,
            target_state: target,
            parameters: options.metrics ? { metrics: options.metrics } : {},
            timeout_ms: options.timeoutMs ?? 5_000,
            force: options.force ?? false,
            reason: options.reason ?? "",
          }),
        ),
      emergencyStop: async (layerId, reason) => {
        const ids = layerId === null ? [...hosts.keys()] : [layerId];
        return Promise.all(ids.map((id) => sendToLayer(emergencyStopCommand({ source, timestamp: now() / 1000, layer_id: id, reason }), id)));
      },
      resume: (layerId, reason = "") => sendToLayer(resumeCommand({ source, timestamp: now() / 1000, layer_id: layerId, reason }), layerId),
      tick: (layerId, count = 1) => {
        hostOf(layerId);
        if (!(Number.isInteger(count) && count > 0)) return Promise.resolve();
        const epoch = (epochs.get(layerId) ?? 0) + count;
        epochs.set(layerId, epoch);
        return report(layerId, { epoch }, {});
      },
      reportMetrics: (layerId, bySeed, summary = {}) => {
        const health: Record<string, Metrics> = {};
        for (const [seedId, metrics] of Object.entries(bySeed)) health[seedId] = metrics;
        return report(layerId, metricsSummary(summary), health);
      },
      subscribe: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      bridgeStats: (layerId) => {
        const bridge = bridges.get(layerId);
        if (!bridge) throw new RangeError(`no layer ${layerId}`);
        return bridge.stats();
      },
    };
    yield* Effect.addFinalizer(() => Effect.sync(() => listeners.clear()));
    return system;
  });

/** A system started from Promise code: `await using`-friendly, or call `close()`, which stops its actors, bridges and client. */
export interface RunningSystem extends EsperSystem, Closeable {}

/** Starts a system for Promise-based callers; rejects with SystemConfigError on a bad config. */
export const startSystem = (config: SystemConfig): Promise<RunningSystem> => openScoped(Effect.map(makeSystem(config), (system) => ({ ...system })));
