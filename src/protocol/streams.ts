import { LAYER_ID_PATTERN } from "./fields.ts";

/**
 * Redis key names (docs/protocol.md "Names"), built here and nowhere else. Every key of one layer
 * carries the hash tag `{L}`, so one layer lives in one Redis Cluster slot and its MULTI/EXEC
 * (snapshot + event + result + ack) stays on one node.
 *
 * The topology says which names the streams other programs read and write have. `esper` (the
 * default) is the above. `reference` gives a layer's control, event and telemetry streams the
 * names the reference implementation's Python clients use (`P.control.layer.L`, no hash tag),
 * and adds the streams only they read: the acknowledgement stream `P.control.ack.layer.L`, one
 * event stream per event type (`P.event.statetransitionevent.layer.L`) and the telemetry
 * publisher's `P.telemetry.batch`, shared by every layer. Keys no reference program touches
 * (state, results, meta, lease, fence, claim, dead letters, coordination) keep their names, so a
 * layer's store, lease and dead letters are the same whichever topology serves it
 * (docs/protocol.md "Reference topology").
 */

/** The namespace `P` of every key when none is configured (ESPER_NAMESPACE, `--namespace`). */
export const DEFAULT_NAMESPACE = "morphogenetic";
export const NAMESPACE_PATTERN = /^[a-z0-9_-]{1,32}$/;

export const isNamespace = (u: unknown): u is string => typeof u === "string" && NAMESPACE_PATTERN.test(u);
/** Whether `u` is a valid layer id: 1 to 64 of [A-Za-z0-9_-]. */
export const isLayerId = (u: unknown): u is string => typeof u === "string" && LAYER_ID_PATTERN.test(u);

/** `ESPER_NAMESPACE` when set (and not empty), else the default. Throws on an invalid one: a startup error. */
export const namespaceFromEnv = (env: Readonly<Record<string, string | undefined>> = process.env): string => {
  const ns = env.ESPER_NAMESPACE;
  if (ns === undefined || ns === "") return DEFAULT_NAMESPACE;
  if (!isNamespace(ns)) throw new RangeError(`ESPER_NAMESPACE=${JSON.stringify(ns)} is invalid: use 1 to 32 of [a-z0-9_-]`);
  return ns;
};

/** Which names a layer's streams have: esper's own (hash-tagged) or the reference implementation's. */
export const TOPOLOGIES = ["esper", "reference"] as const;
/** `esper` (default): `P.control.layer.{L}` ...; `reference`: the reference's names, `P.control.layer.L` ... (see `streams`). */
export type Topology = (typeof TOPOLOGIES)[number];
/** The topology when none is configured (ESPER_TOPOLOGY, `--topology`). */
export const DEFAULT_TOPOLOGY: Topology = "esper";

export const isTopology = (u: unknown): u is Topology => typeof u === "string" && (TOPOLOGIES as readonly string[]).includes(u);

/** `ESPER_TOPOLOGY` when set (and not empty), else the default. Throws on an unknown one: a startup error. */
export const topologyFromEnv = (env: Readonly<Record<string, string | undefined>> = process.env): Topology => {
  const t = env.ESPER_TOPOLOGY;
  if (t === undefined || t === "") return DEFAULT_TOPOLOGY;
  if (!isTopology(t)) throw new RangeError(`ESPER_TOPOLOGY=${JSON.stringify(t)} is invalid: use ${TOPOLOGIES.join(" or ")}`);
  return t;
};

/** Consumer groups: layer owners read control (and a trainer's telemetry) as kasmina; controllers read as tamiyo. */
export const GROUPS = { kasmina: "kasmina", tamiyo: "tamiyo" } as const;
export type Group = (typeof GROUPS)[keyof typeof GROUPS];

/** The per-layer key kinds of docs/protocol.md, plus `results` and `results_old` (the command dedupe table, in two generations). */
export const LAYER_KEY_KINDS = ["control", "event", "telemetry", "dlq", "state", "results", "results_old"] as const;
export type LayerKeyKind = (typeof LAYER_KEY_KINDS)[number];

/** The streams only reference programs read or write (`Streams.reference`, under the reference topology). */
export interface ReferenceStreams {
  /** Stream: the acknowledgement of each command to layer L, `P.control.ack.layer.L` (a CommandResult, the command's id in `metadata.correlation_id`). */
  readonly ack: (layer: string) => string;
  /** Stream: layer L's events of one type, `P.event.{type in lower case}.layer.L`, e.g. `P.event.statetransitionevent.layer.L`. */
  readonly eventsOf: (messageType: string, layer: string) => string;
  /** Stream: the telemetry batches of every layer, `P.telemetry.batch`. */
  readonly telemetryBatch: string;
}

/** The Redis key names of one namespace `P`, as `streams()` builds them. */
export interface Streams {
  readonly namespace: string;
  readonly topology: Topology;
  /** The streams only reference programs use; undefined under the esper topology. */
  readonly reference: ReferenceStreams | undefined;
  /** Stream: commands for layer L. */
  readonly control: (layer: string) => string;
  /** Stream: commands for every layer (emergency stop without layer_id). */
  readonly controlAll: string;
  /** Stream: events and command results of layer L. */
  readonly events: (layer: string) => string;
  /** Stream: telemetry of layer L. */
  readonly telemetry: (layer: string) => string;
  /** Stream: dead letters of layer L's streams. */
  readonly dlq: (layer: string) => string;
  /** Stream: dead letters of `P.control.all` and `P.coordination`. */
  readonly dlqAll: string;
  /** Stream: announcements, heartbeats, coordination requests and responses. */
  readonly coordination: string;
  /** Hash: persisted seed snapshots of layer L, field = seed id in decimal. */
  readonly state: (layer: string) => string;
  /** Hash: results of commands already applied to layer L, by message_id (redelivery dedupe). */
  readonly results: (layer: string) => string;
  /** Hash: the generation of `results` before the current one (see the bridge's `dedupeWindow`). */
  readonly resultsOld: (layer: string) => string;
  /**
   * Any further key of layer L (claim-check payloads, leases): `P.{kind}.layer.{L}`, in the
   * layer's slot. `kind` is a lower-case word.
   */
  readonly layerKey: (kind: string, layer: string) => string;
  /**
   * A key of the whole namespace for one named thing: `P.{kind}.{name}` (the Tamiyo lease
   * `P.lease.tamiyo`, a coordination lock `P.lock.{resource}`, a checkpoint's proposals
   * `P.checkpoint.{id}`). `kind` is a lower-case word; `name` is taken as given.
   */
  readonly sharedKey: (kind: string, name: string) => string;
  /** The leading Tamiyo's lease (`P.lease.tamiyo`) and its token counter (`P.fence.tamiyo`), which every layer reads. */
  readonly leaderLease: { readonly key: string; readonly counter: string };
  /** The dead-letter stream for an entry of `stream`: its layer's, or `P.dlq.all`. */
  readonly dlqFor: (stream: string) => string;
}

const KIND_PATTERN = /^[a-z][a-z0-9_]*$/;
const REFERENCE_KIND_PATTERN = /^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*$/;

/**
 * The key names of `namespace` (default: ESPER_NAMESPACE, else "morphogenetic") in `topology`
 * (default: ESPER_TOPOLOGY, else "esper"). Throws RangeError on an invalid namespace or topology,
 * and its per-layer functions throw RangeError on an invalid layer id.
 */
export const streams = (namespace: string = namespaceFromEnv(), topology: Topology = topologyFromEnv()): Streams => {
  if (!isNamespace(namespace)) throw new RangeError(`namespace ${JSON.stringify(namespace)} is invalid: use 1 to 32 of [a-z0-9_-]`);
  if (!isTopology(topology)) throw new RangeError(`topology ${JSON.stringify(topology)} is invalid: use ${TOPOLOGIES.join(" or ")}`);
  // Names are asked for on every command sent: each is checked and built once, then remembered.
  const known = new Map<string, Map<string, string>>();
  const layerKey = (kind: string, layer: string): string => {
    const cached = known.get(kind)?.get(layer);
    if (cached !== undefined) return cached;
    if (!isLayerId(layer)) throw new RangeError(`layer id ${JSON.stringify(layer)} is invalid: use 1 to 64 of [A-Za-z0-9_-]`);
    if (!KIND_PATTERN.test(kind)) throw new RangeError(`key kind ${JSON.stringify(kind)} is invalid: use a lower-case word`);
    const key = `${namespace}.${kind}.layer.{${layer}}`;
    let byLayer = known.get(kind);
    if (byLayer === undefined) known.set(kind, (byLayer = new Map()));
    // Bounded: layer ids are few; a caller probing many bad ids never gets here (they throw).
    if (byLayer.size < 10_000) byLayer.set(layer, key);
    return key;
  };
  // The reference's names: `P.{kind}.layer.L`, with no hash tag; `kind` may be several words.
  const untagged = new Map<string, string>();
  const referenceKey = (kind: string, layer: string): string => {
    const id = `${kind}\n${layer}`;
    const cached = untagged.get(id);
    if (cached !== undefined) return cached;
    if (!isLayerId(layer)) throw new RangeError(`layer id ${JSON.stringify(layer)} is invalid: use 1 to 64 of [A-Za-z0-9_-]`);
    if (!REFERENCE_KIND_PATTERN.test(kind)) throw new RangeError(`key kind ${JSON.stringify(kind)} is invalid: use lower-case words joined by dots`);
    const key = `${namespace}.${kind}.layer.${layer}`;
    if (untagged.size < 10_000) untagged.set(id, key);
    return key;
  };
  const sharedKey = (kind: string, name: string): string => {
    if (!KIND_PATTERN.test(kind)) throw new RangeError(`key kind ${JSON.stringify(kind)} is invalid: use a lower-case word`);
    return `${namespace}.${kind}.${name}`;
  };
  const reference = topology === "reference";
  const dlqAll = `${namespace}.dlq.all`;
  return {
    namespace,
    topology,
    reference: reference
      ? {
          ack: (l) => referenceKey("control.ack", l),
          eventsOf: (type, l) => referenceKey(`event.${type.toLowerCase()}`, l),
          telemetryBatch: `${namespace}.telemetry.batch`,
        }
      : undefined,
    control: (l) => (reference ? referenceKey("control", l) : layerKey("control", l)),
    controlAll: `${namespace}.control.all`,
    events: (l) => (reference ? referenceKey("event", l) : layerKey("event", l)),
    telemetry: (l) => (reference ? referenceKey("telemetry.aggregated", l) : layerKey("telemetry", l)),
    dlq: (l) => layerKey("dlq", l),
    dlqAll,
    coordination: `${namespace}.coordination`,
    state: (l) => layerKey("state", l),
    results: (l) => layerKey("results", l),
    resultsOld: (l) => layerKey("results_old", l),
    layerKey,
    sharedKey,
    leaderLease: { key: sharedKey("lease", "tamiyo"), counter: sharedKey("fence", "tamiyo") },
    dlqFor: (stream) => {
      const layer = layerOf(stream);
      return layer === undefined ? dlqAll : layerKey("dlq", layer);
    },
  };
};

/** The parts of a key built by `streams()`, as parseKey reads them back. */
export interface ParsedKey {
  readonly namespace: string;
  /**
   * `control`, `event`, `telemetry`, ... for layer keys (the reference topology's several words:
   * `control.ack`, `event.statetransitionevent`, `telemetry.aggregated`); `control`, `dlq`,
   * `coordination` or `telemetry` (`P.telemetry.batch`) otherwise.
   */
  readonly kind: string;
  /** Absent for the keys shared by all layers. */
  readonly layer?: string;
}

const LAYER_KEY = /^([a-z0-9_-]{1,32})\.([a-z][a-z0-9_]*)\.layer\.\{([A-Za-z0-9_-]{1,64})\}$/;
const REFERENCE_LAYER_KEY = /^([a-z0-9_-]{1,32})\.([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*)\.layer\.([A-Za-z0-9_-]{1,64})$/;
const SHARED_KEY = /^([a-z0-9_-]{1,32})\.(?:(control|dlq)\.all|(coordination)|(telemetry)\.batch)$/;

/** Reads a key built by `streams()` (in either topology) back into its parts; undefined for any other string. */
export const parseKey = (key: string): ParsedKey | undefined => {
  const layer = LAYER_KEY.exec(key) ?? REFERENCE_LAYER_KEY.exec(key);
  if (layer !== null) return { namespace: layer[1]!, kind: layer[2]!, layer: layer[3]! };
  const shared = SHARED_KEY.exec(key);
  if (shared !== null) return { namespace: shared[1]!, kind: shared[2] ?? shared[3] ?? shared[4]! };
  return undefined;
};

/** The layer id of a per-layer key, e.g. `P.control.layer.{L}` -> `L`. */
export const layerOf = (key: string): string | undefined => parseKey(key)?.layer;

export const isTelemetryStream = (key: string): boolean => {
  const kind = parseKey(key)?.kind;
  return kind === "telemetry" || kind?.startsWith("telemetry.") === true;
};

/** `P.control.layer.{L}` (`P.control.layer.L`) or `P.control.all`: where a deployment with a key requires signatures. */
export const isControlStream = (key: string): boolean => parseKey(key)?.kind === "control";
