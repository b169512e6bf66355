/**
 * What `esper status` shows: the services that announced themselves on `P.coordination` lately
 * (presence.ts), each with its last heartbeat, flagged when it stopped beating; and for each
 * layer, who holds its lease, what its group holds pending, how far it lags behind its control
 * stream and how many dead letters wait.
 */
import { Effect } from "effect";
import type { Bus, BusError } from "../bus/bus.ts";
import { decodeEntry } from "../protocol/entry.ts";
import { GROUPS, streams, type Topology } from "../protocol/streams.ts";
import { layerKeys } from "../bridge/store.ts";

export interface ServiceView {
  readonly id: string;
  readonly type: string;
  readonly capabilities: readonly string[];
  readonly status: string;
  readonly uptimeSeconds: number;
  /** Milliseconds since its last heartbeat (null: announced, no heartbeat seen). */
  readonly lastBeatAgoMs: number | null;
  readonly heartbeatMs: number;
  readonly metrics: Readonly<Record<string, number>>;
  /** Its last heartbeat said it stopped cleanly. */
  readonly stopped: boolean;
  /** Not stopped, yet silent for more than three heartbeat intervals: dead, hung or cut off. */
  readonly silent: boolean;
}

export interface LayerView {
  readonly layerId: string;
  /** Who holds the layer's lease now (null: nobody, so nobody serves it). */
  readonly owner: { readonly holder: string; readonly token: number } | null;
  /** Entries the layer's group holds delivered but not yet acked. */
  readonly pending: number;
  /** Entries on its control stream not yet delivered to its group (capped at LAG_CAP). */
  readonly lag: number;
  readonly deadLetters: number;
}

export interface ClusterStatus {
  readonly at: number;
  readonly services: readonly ServiceView[];
  readonly layers: readonly LayerView[];
}

export interface StatusOptions {
  readonly namespace?: string;
  /** The names of the layers' streams (their backlogs are read there). Default: ESPER_TOPOLOGY, else "esper". */
  readonly topology?: Topology;
  /** Layers to report; default: those the announced services host. */
  readonly layers?: readonly string[];
  /** How far back `P.coordination` is read. Default 60,000 ms (announcements repeat every 30 s). */
  readonly windowMs?: number;
  readonly now: number;
}

/** Lag counted up to this many entries. */
export const LAG_CAP = 10_000;

const text = (bytes: Uint8Array | undefined): string | null => (bytes === undefined ? null : Buffer.from(bytes).toString("utf8"));

export const readStatus = (bus: Bus, options: StatusOptions): Effect.Effect<ClusterStatus, BusError> =>
  Effect.gen(function* () {
    const names = streams(options.namespace, options.topology);
    const since = Math.max(0, options.now - (options.windowMs ?? 60_000));
    const entries = yield* bus.range(names.coordination, `${since}-0`, "+", 100_000);
    const services = new Map<string, { type: string; capabilities: string[]; heartbeatMs: number; beat?: { at: number; status: string; uptime: number; metrics: Record<string, number> } }>();
    for (const entry of entries) {
      const decoded = decodeEntry(names.coordination, entry.fields);
      if (decoded._tag !== "Success") continue; // not ours to judge here: the dead-letter stream is
      const m = decoded.success;
      const at = Number(entry.id.split("-")[0]);
      if (m.message_type === "ServiceAnnouncement") {
        const known = services.get(m.service_id);
        const heartbeatMs = typeof m.endpoints.heartbeat_ms === "number" ? m.endpoints.heartbeat_ms : 2_000;
        services.set(m.service_id, { ...known, type: m.service_type, capabilities: [...m.capabilities], heartbeatMs });
      } else if (m.message_type === "Heartbeat") {
        const known = services.get(m.service_id) ?? { type: "?", capabilities: [], heartbeatMs: 2_000 };
        services.set(m.service_id, { ...known, beat: { at, status: m.status, uptime: m.uptime_seconds, metrics: { ...m.metrics } } });
      }
    }
    const serviceViews: ServiceView[] = [...services].map(([id, s]) => {
      const ago = s.beat === undefined ? null : options.now - s.beat.at;
      const stopped = s.beat?.metrics.stopped === 1;
      return {
        id,
        type: s.type,
        capabilities: s.capabilities,
        status: s.beat?.status ?? "unknown",
        uptimeSeconds: s.beat?.uptime ?? 0,
        lastBeatAgoMs: ago,
        heartbeatMs: s.heartbeatMs,
        metrics: s.beat?.metrics ?? {},
        stopped,
        silent: !stopped && (ago === null || ago > 3 * s.heartbeatMs),
      };
    });
    const layerIds =
      options.layers ?? [...new Set(serviceViews.filter((s) => !s.stopped).flatMap((s) => s.capabilities.filter((c) => c.startsWith("layer:")).map((c) => c.slice(6))))].sort();
    const layers: LayerView[] = [];
    for (const layerId of layerIds) {
      const keys = layerKeys(names, layerId);
      const lease = yield* bus.hgetall(keys.lease);
      const holder = text(lease.holder);
      const group = yield* bus.groupInfo(keys.control, GROUPS.kasmina);
      const after = group === undefined ? "-" : `(${group.lastDeliveredId}`;
      const undelivered = yield* bus.range(keys.control, after, "+", LAG_CAP);
      layers.push({
        layerId,
        owner: holder === null ? null : { holder, token: Number(text(lease.token)) },
        pending: group?.pending ?? 0,
        lag: undelivered.length,
        deadLetters: yield* bus.length(keys.dlq),
      });
    }
    return { at: options.now, services: serviceViews.sort((a, b) => a.id.localeCompare(b.id)), layers };
  });
