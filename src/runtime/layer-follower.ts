/**
 * A trainer whose layers are owned elsewhere (an `esper worker`): its data plane follows each
 * layer's event stream instead of holding the layer's actor (docs/architecture.md "Who holds what
 * across processes"). Each `StateTransitionEvent` and `BlueprintEvent` of `P.event.layer.{L}` is
 * applied to the KasminaLayer's state table in stream order, so every replica that follows the
 * layer holds the same table at the same offset. A follower that starts late, or finds that the
 * stream was trimmed past where it read, rebuilds the table from what the layer stored
 * (`P.state.layer.{L}`) and follows on from there.
 *
 * It also carries the trainer's reports the other way: `tick` and `reportMetrics` write
 * `LayerHealthReport`s on the layer's telemetry stream, with the epoch as an absolute count (from
 * the layer's stored record on), so several replicas reporting the same epoch tick it once.
 * `trainerHooks(followers)` gives a KasminaTrainer those reports.
 *
 * One replica may validate blueprints (`FollowOptions.validateBlueprint`): a BlueprintUpdateCommand
 * that asked for validation reaches it as the owner's BlueprintEvent `updated`, whose details carry
 * the command's validation_metrics and rollback_on_failure; its data plane swaps, validates and,
 * when that fails, puts the previous blueprint back; it writes the verdict (`validated` or
 * `rolled_back`) on the layer's event stream, and after a rollback sends the owner a
 * BlueprintUpdateCommand back to the previous blueprint (`metadata.rolls_back`), so the owner's
 * store and every replica's table agree with its data plane again (docs/protocol.md "Blueprint
 * validation").
 */
import { Clock, Effect, Result, Schedule, type Scope } from "effect";
import { ALPHA_ON_ENTRY } from "../../machines/seed.ts";
import { parseSeedState } from "../../machines/lifecycle.ts";
import type { Metrics } from "../../machines/seed-rules.ts";
import type { Bus, BusError } from "../bus/bus.ts";
import { layerKeys, readRecord, RECORD_FIELD, storedSeeds } from "../bridge/store.ts";
import type { Codec } from "../protocol/codec.ts";
import { decodeEntry, encodeEntry, type HmacKey } from "../protocol/entry.ts";
import { GRAFTING_STRATEGIES, type GraftingStrategy } from "../../machines/lifecycle.ts";
import { blueprintEvent, blueprintUpdateCommand } from "../protocol/make.ts";
import type { BlueprintEvent, Message, StateTransitionEvent } from "../protocol/messages.ts";
import { streams, type Topology } from "../protocol/streams.ts";
import { compareStreamIds, MIN_ID, parseStreamId, type StreamId } from "../bus/stream-id.ts";
import { announcePresence } from "../coordination/presence.ts";
import { openScoped, type Closeable } from "./scoped.ts";
import type { LayerSpec } from "./system.ts";
import { metricsSummary, trainerReport } from "./trainer-report.ts";

/** How `followLayers` reads the event streams and writes its reports. */
export interface FollowOptions {
  readonly namespace?: string;
  /** The layers' stream names: esper's or the reference's (docs/protocol.md). Default: ESPER_TOPOLOGY, else "esper". */
  readonly topology?: Topology;
  /** How long a read of the event stream waits for news. Default 500 ms. */
  readonly blockMs?: number;
  /** Entries a read takes at most. Default 1,000. */
  readonly readCount?: number;
  /** `source` of the reports. Default "esper.trainer". */
  readonly source?: string;
  readonly codec?: Codec;
  readonly hmacKey?: HmacKey;
  /** Told whenever a follower rebuilt its table from the store, and why. */
  readonly onRebuild?: (layerId: string, why: string) => void;
  /**
   * Announce this trainer on `P.coordination` under this service id (type `esper.trainer`, a
   * heartbeat every 2 s with the events it applied), so `esper status` lists it. Default: silent.
   */
  readonly announceAs?: string;
  /** Told of each event as it is applied to a table, after the table changed. */
  readonly onApplied?: (message: StateTransitionEvent | BlueprintEvent) => void;
  /**
   * The data plane's validation of blueprint updates (`blueprintValidator` from `esper/kasmina`). Give it to ONE
   * replica of a trainer: it validates every update that asked for it (non-empty validation_metrics), writes the
   * verdict on the layer's event stream and asks the owner to put the previous blueprint back after a rollback.
   * The other replicas only follow. Without it, a follower validates nothing.
   */
  readonly validateBlueprint?: BlueprintValidator;
  /**
   * Layers to follow on from a position (a checkpoint's, `restoreLayers` from `esper/kasmina` gives it) instead of
   * building their tables from the store: the table must hold what it held there. A stream trimmed past it is
   * noticed as ever, and the table rebuilt from the store.
   */
  readonly from?: Readonly<Record<string, FollowPosition>>;
}

/** Where a follower stands in a layer's event stream. */
export interface FollowPosition {
  /** The id of the last entry applied. */
  readonly offset: string;
  /** Entries ever appended to the stream up to `offset` (what notices a trim). */
  readonly entriesAdded: number;
}

/** A blueprint update that asked for validation, as a follower hands it to its data plane. */
export interface BlueprintValidationRequest {
  readonly layerId: string;
  readonly seedId: number;
  readonly blueprintId: string;
  /** What the seed held before: what a rollback puts back (null: nothing, so there is no rollback). */
  readonly previousBlueprintId: string | null;
  readonly strategy?: GraftingStrategy;
  /** The command's validation_metrics: `max_<metric>` an upper bound, `min_<metric>` or `<metric>` a lower one. */
  readonly validationMetrics: Readonly<Record<string, number>>;
  readonly rollbackOnFailure: boolean;
  /** The BlueprintUpdateCommand's message_id. */
  readonly commandId: string;
}

/** What the data plane made of a validation: the BlueprintEvent it comes to, `validated` (success or not) or `rolled_back`. */
export interface BlueprintVerdict {
  readonly operation: "validated" | "rolled_back";
  readonly success: boolean;
  readonly metrics_delta: Readonly<Record<string, number>>;
  readonly details: Readonly<Record<string, unknown>>;
}

/**
 * Swaps the seed's blueprint in the data plane, writing it to the state table, validates it, and on a rollback puts
 * the previous blueprint's weights and row back. `blueprintValidator` (esper/kasmina) builds one from KasminaLayers.
 */
export type BlueprintValidator = (request: BlueprintValidationRequest) => Promise<BlueprintVerdict>;

/** One layer as a trainer follows it. */
export interface LayerFollower {
  readonly layerId: string;
  /** The id of the last event-stream entry applied (`0-0` before any). */
  readonly offset: () => string;
  /** Events applied since it started. */
  readonly applied: () => number;
  /** Times it rebuilt its table from the store (1 at start, unless it followed on `from` a position). */
  readonly rebuilds: () => number;
  /** Its offset and the count of entries appended up to it: what a checkpoint records to follow on from. */
  readonly position: () => FollowPosition;
  /**
   * Applies nothing past `offset` until held elsewhere or released (`undefined`); for a consistent cut across replicas
   * (`checkpointLayers`). A hold behind the offset already applied holds it where it is.
   */
  readonly holdAt: (offset: string | undefined) => void;
  /** Blueprint updates its data plane validated (with `validateBlueprint`), rolled back or not. */
  readonly validations: () => number;
}

/** The trainer's side of remote layers: what `trainerHooks` needs, and the followers. */
export interface LayerFollowers {
  readonly layers: readonly LayerFollower[];
  /** Reports `epochs` more epochs of training on the layer's telemetry stream. */
  readonly tick: (layerId: string, epochs?: number) => Promise<void>;
  /** Reports per-seed metrics (and a performance summary) on the layer's telemetry stream. */
  readonly reportMetrics: (layerId: string, bySeed: Readonly<Record<number, Metrics>>, summary?: Readonly<Record<string, number>>) => Promise<void>;
}

/** How often a held follower looks whether its hold moved. */
const HOLD_POLL_MS = 5;

/** The defaults of FollowOptions. */
export const FOLLOW_DEFAULTS = { blockMs: 500, readCount: 1_000, source: "esper.trainer" } as const;

/**
 * Follows each layer of `specs` (e.g. `layerSpecOf(kasminaLayer)`: its id, seed count, state table
 * and blueprint registry) in the current Scope; resolves once every table was built from the store.
 */
export const followLayers = (bus: Bus, specs: readonly LayerSpec[], options: FollowOptions = {}): Effect.Effect<LayerFollowers, BusError, Scope.Scope> =>
  Effect.gen(function* () {
    const names = streams(options.namespace, options.topology);
    const clock = yield* Clock.Clock;
    const epochs = new Map<string, number>();
    const followers: LayerFollower[] = [];
    const source = options.source ?? FOLLOW_DEFAULTS.source;
    const encode = (stream: string, message: Message) =>
      encodeEntry(message, { stream, ...(options.codec ? { codec: options.codec } : {}), ...(options.hmacKey ? { hmacKey: options.hmacKey } : {}) });
    /** Writes a verdict or a rollback, retried through a Redis outage: an update is validated once, so what it said must land. */
    const send = (stream: string, message: Message) =>
      bus.publish(stream, encode(stream, message)).pipe(
        Effect.retry({ while: (error: BusError) => error.reason !== "closed", schedule: Schedule.spaced("200 millis") }),
      );
    for (const spec of specs) {
      if (spec.table === undefined) throw new RangeError(`layer ${spec.id}: a follower needs the layer's state table (use layerSpecOf)`);
      const table = spec.table;
      const keys = layerKeys(names, spec.id);
      const indexOf = spec.blueprintIndex ?? (() => -1);
      let offset = "0-0";
      /** Applies no entry after this id while set (see LayerFollower.holdAt). */
      let hold: StreamId | undefined;
      const beyondHold = (id: string) => hold !== undefined && compareStreamIds(parseStreamId(id) ?? MIN_ID, hold) > 0;
      /** Entries ever appended to the event stream up to `offset` (XINFO STREAM entries-added). */
      let added = 0;
      let applied = 0;
      let rebuilds = 0;
      let validations = 0;

      /** The layer's stored epoch count, which this follower's ticks continue from (one count for all replicas). */
      const storedEpoch = Effect.gen(function* () {
        const record = readRecord((yield* bus.hmget(keys.meta, [RECORD_FIELD]))[0] ?? undefined);
        const epoch = Result.isSuccess(record) ? record.success.epoch : 0;
        epochs.set(spec.id, Math.max(epochs.get(spec.id) ?? 0, epoch));
        return epoch;
      });
      /** The seed takes the blueprint (and grafting strategy) an `updated` event names. */
      const takeBlueprint = (m: BlueprintEvent) => {
        const strategy = strategyOf(m);
        table.write(m.seed_id, { blueprint: indexOf(m.blueprint_id), ...(strategy ? { strategy } : {}) });
      };

      /** The table as the layer stored it, and the stream offset to follow on from. */
      const rebuild = (why: string) =>
        Effect.gen(function* () {
          // The offset first: the store is at least as new, and replaying what it already holds changes nothing at the end.
          const info = yield* bus.streamInfo(keys.events);
          offset = info.lastGeneratedId;
          added = info.entriesAdded;
          const stored = yield* storedSeeds(bus, keys);
          const epoch = yield* storedEpoch;
          for (let seedId = 0; seedId < table.numSeeds; seedId++) {
            const seed = stored.get(seedId);
            if (seed !== undefined) {
              const c = seed.context;
              table.write(seedId, { state: seed.state, blueprint: indexOf(c.blueprintId), epochsInState: Math.max(0, epoch - c.enteredAt), alpha: c.alpha, strategy: c.strategy, errorCount: c.errorCount });
            } else {
              table.write(seedId, { state: "DORMANT", blueprint: -1, epochsInState: 0, alpha: 0, strategy: "linear", errorCount: 0 });
            }
          }
          rebuilds++;
          options.onRebuild?.(spec.id, why);
        });

      /**
       * Whether entries were appended that this follower never read: once it has read up to the
       * last id ever generated, the count of entries ever appended must be what it counted.
       */
      const missedSome = Effect.map(bus.streamInfo(keys.events), (info) => info.lastGeneratedId === offset && info.entriesAdded !== added);

      /** Applies one entry to the table; a blueprint update this replica validates is returned instead, for `validateUpdate`. */
      const apply = (fields: Parameters<typeof decodeEntry>[1]): { readonly event: BlueprintEvent; readonly request: BlueprintValidationRequest } | undefined => {
        const decoded = decodeEntry(keys.events, fields);
        if (decoded._tag !== "Success") return undefined;
        const m = decoded.success;
        if (m.message_type === "StateTransitionEvent" && m.layer_id === spec.id && m.seed_id < table.numSeeds) {
          const to = parseSeedState(m.to_state);
          if (to === undefined) return undefined;
          table.write(m.seed_id, { state: to, alpha: ALPHA_ON_ENTRY[to], epochsInState: 0, ...(to === "DORMANT" ? { blueprint: -1 } : {}) });
          applied++;
          options.onApplied?.(m);
        } else if (m.message_type === "BlueprintEvent" && m.layer_id === spec.id && m.seed_id < table.numSeeds && m.success && m.operation === "updated") {
          const request = options.validateBlueprint ? validationOf(spec.id, m) : undefined;
          if (request !== undefined) return { event: m, request };
          takeBlueprint(m);
          applied++;
          options.onApplied?.(m);
        }
        return undefined;
      };

      /**
       * The data plane swaps, validates, maybe rolls back (writing the table itself); the verdict goes on the event
       * stream, and a rollback to the owner as a command, so its store and every other replica follow.
       */
      const validateUpdate = (update: { readonly event: BlueprintEvent; readonly request: BlueprintValidationRequest }) =>
        Effect.gen(function* () {
          const { event, request } = update;
          const verdict = yield* Effect.tryPromise(() => options.validateBlueprint!(request)).pipe(
            Effect.catch((error) => {
              // Not validated (e.g. a blueprint this replica's layer holds no bank for): followed as any replica would.
              takeBlueprint(event);
              const cause = error.cause instanceof Error ? error.cause.message : String(error.cause);
              return Effect.succeed<BlueprintVerdict>({ operation: "validated", success: false, metrics_delta: {}, details: { error: `validation failed: ${cause}` } });
            }),
          );
          applied++;
          validations++;
          options.onApplied?.(event);
          const now = clock.currentTimeMillisUnsafe();
          const said = blueprintEvent({
            source,
            timestamp: now / 1000,
            correlation_id: event.correlation_id ?? request.commandId,
            layer_id: spec.id,
            seed_id: request.seedId,
            blueprint_id: request.blueprintId,
            operation: verdict.operation,
            previous_blueprint_id: request.previousBlueprintId,
            metrics_delta: verdict.metrics_delta,
            success: verdict.success,
            details: { ...verdict.details, command_id: request.commandId },
          });
          yield* send(keys.events, said);
          if (verdict.operation === "rolled_back" && request.previousBlueprintId !== null) {
            yield* send(
              names.control(spec.id),
              blueprintUpdateCommand({
                source,
                timestamp: now / 1000,
                correlation_id: request.commandId,
                layer_id: spec.id,
                seed_id: request.seedId,
                blueprint_id: request.previousBlueprintId,
                grafting_strategy: table.row(request.seedId).strategy,
                rollback_on_failure: false,
                metadata: { rolls_back: request.commandId, triggered_by: "system" },
              }),
            );
          }
        });

      const resume = options.from?.[spec.id];
      if (resume === undefined) yield* rebuild("started");
      else {
        offset = resume.offset;
        added = resume.entriesAdded;
        yield* storedEpoch;
      }
      const follow = Effect.gen(function* () {
        for (;;) {
          const from = offset;
          if (hold !== undefined && compareStreamIds(parseStreamId(from) ?? MIN_ID, hold) >= 0) {
            // Held where it stands: nothing to read until the hold moves.
            yield* Effect.sleep(HOLD_POLL_MS);
            continue;
          }
          const entries = yield* bus.readAfter(keys.events, from, options.readCount ?? FOLLOW_DEFAULTS.readCount, options.blockMs ?? FOLLOW_DEFAULTS.blockMs);
          for (const entry of entries) {
            // Entries past a hold are read again once it moves.
            if (beyondHold(entry.id)) break;
            const update = apply(entry.fields);
            // Past it before validating: an update is validated once, whatever happens to the writes that follow.
            offset = entry.id;
            added++;
            if (update !== undefined) yield* validateUpdate(update);
          }
          // Entries trimmed before they were read are lost to this follower: the store knows what they did.
          if (yield* missedSome) yield* rebuild(`the event stream was trimmed past ${from}`);
        }
      }).pipe(
        // Redis away: wait, then go on from where it was (a trim meanwhile is caught by the check).
        Effect.catch((error: BusError) => (error.reason === "closed" ? Effect.interrupt : Effect.sleep(200))),
        Effect.forever,
      );
      yield* Effect.forkScoped(follow);
      followers.push({
        layerId: spec.id,
        offset: () => offset,
        applied: () => applied,
        rebuilds: () => rebuilds,
        validations: () => validations,
        position: () => ({ offset, entriesAdded: added }),
        holdAt: (at) => {
          hold = at === undefined ? undefined : parseStreamId(at);
        },
      });
    }

    if (options.announceAs !== undefined) {
      yield* announcePresence(bus, {
        ...(options.namespace ? { namespace: options.namespace } : {}),
        serviceType: "esper.trainer",
        serviceId: options.announceAs,
        capabilities: specs.map((s) => `follows:${s.id}`),
        metrics: () => ({ applied: followers.reduce((n, f) => n + f.applied(), 0), rebuilds: followers.reduce((n, f) => n + f.rebuilds(), 0) }),
        ...(options.codec ? { codec: options.codec } : {}),
        ...(options.hmacKey ? { hmacKey: options.hmacKey } : {}),
      });
    }

    const byId = new Map(specs.map((s) => [s.id, s] as const));
    const report = (layerId: string, summary: Readonly<Record<string, unknown>>, health: Readonly<Record<string, Metrics>>): Promise<void> => {
      const spec = byId.get(layerId);
      if (spec === undefined) return Promise.reject(new RangeError(`this trainer follows no layer ${layerId}`));
      const stream = names.telemetry(layerId);
      const message = trainerReport({
        source,
        layerId,
        totalSeeds: spec.seeds,
        activeSeeds: spec.table?.activeCount() ?? 0,
        summary,
        health,
        nowMs: clock.currentTimeMillisUnsafe(),
      });
      return Effect.runPromise(Effect.asVoid(bus.publish(stream, encode(stream, message))));
    };
    return {
      layers: followers,
      tick: (layerId, n = 1) => {
        const epoch = (epochs.get(layerId) ?? 0) + n;
        epochs.set(layerId, epoch);
        return report(layerId, { epoch }, {});
      },
      reportMetrics: (layerId, bySeed, summary = {}) => report(layerId, metricsSummary(summary), { ...bySeed }),
    };
  });

const strategyOf = (m: BlueprintEvent): GraftingStrategy | undefined => {
  const strategy = m.details.grafting_strategy;
  return typeof strategy === "string" && (GRAFTING_STRATEGIES as readonly string[]).includes(strategy) ? (strategy as GraftingStrategy) : undefined;
};

/**
 * The validation an owner's `updated` event asks for (docs/protocol.md "Blueprint validation"), or undefined: none asked
 * (no validation_metrics), or the update puts a blueprint back after a rollback (its data plane already holds it).
 */
export const validationOf = (layerId: string, m: BlueprintEvent): BlueprintValidationRequest | undefined => {
  const d = m.details;
  if (typeof d.rolls_back === "string") return undefined;
  const thresholds: Record<string, number> = {};
  if (d.validation_metrics !== null && typeof d.validation_metrics === "object") {
    for (const [key, value] of Object.entries(d.validation_metrics as Record<string, unknown>)) if (typeof value === "number" && Number.isFinite(value)) thresholds[key] = value;
  }
  if (Object.keys(thresholds).length === 0) return undefined;
  const strategy = strategyOf(m);
  return {
    layerId,
    seedId: m.seed_id,
    blueprintId: m.blueprint_id,
    previousBlueprintId: m.previous_blueprint_id,
    ...(strategy ? { strategy } : {}),
    validationMetrics: thresholds,
    rollbackOnFailure: d.rollback_on_failure !== false,
    commandId: typeof d.command_id === "string" ? d.command_id : (m.correlation_id ?? m.message_id),
  };
};

/** Layers followed from Promise code; `close()` stops following. */
export interface RunningFollowers extends LayerFollowers, Closeable {}

/** `followLayers` for Promise code (Effect code uses `followLayers` from `esper/effect` in a Scope). */
export const startFollowing = (bus: Bus, specs: readonly LayerSpec[], options: FollowOptions = {}): Promise<RunningFollowers> =>
  openScoped(Effect.map(followLayers(bus, specs, options), (followers) => ({ ...followers })));
