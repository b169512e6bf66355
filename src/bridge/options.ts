import type { Codec } from "../protocol/codec.ts";
import type { HmacKey } from "../protocol/entry.ts";
import { topologyFromEnv, type Topology } from "../protocol/streams.ts";

/** Everything a layer's bridge can be told. Every default is written once, in BRIDGE_DEFAULTS. */
export interface BridgeOptions {
  /** Key namespace P. Default: ESPER_NAMESPACE, else "morphogenetic". */
  readonly namespace?: string;
  /**
   * The names of the layer's streams (docs/protocol.md "Reference topology"). `reference`: the
   * reference implementation's (`P.control.layer.L` ...), every answer also acknowledged on
   * `P.control.ack.layer.L` and every event copied to its type's stream, and telemetry also taken
   * from `P.telemetry.batch`. Default: ESPER_TOPOLOGY, else "esper".
   */
  readonly topology?: Topology;
  /**
   * This worker's consumer name in the groups. Default `${hostname}-${pid}`. Whatever the name,
   * a worker takes over what its group holds pending when it starts and applies it first.
   */
  readonly consumer?: string;
  /**
   * Codec for what the bridge writes to its event stream (events, results). Default "msgpack";
   * under the reference topology "reference" (plain JSON, as the reference writes). The copies for
   * reference readers are always written as the reference writes them.
   */
  readonly codec?: Codec;
  /** The deployment's HMAC key: control entries must then carry a valid, fresh `sig`, and what the bridge writes is signed. */
  readonly hmacKey?: HmacKey;
  /**
   * A signed command must have been written within this long of its own `timestamp` (measured
   * against the entry id Redis gave it), so a captured signed entry cannot be written again later.
   * Default 60,000 ms.
   */
  readonly maxSignedAgeMs?: number;
  /** Largest accepted `data`, in bytes (the whole entry may add 4 KiB of other fields); what the bridge writes is kept within it too. Default 1 MiB. */
  readonly maxBytes?: number;
  /** Deliveries before an entry is dead-lettered. Default 5. */
  readonly maxDeliveries?: number;
  /** Entries per read. Default 256. */
  readonly readCount?: number;
  /** Most bytes per read, whatever readCount allows (entries near the size limit come a few at a time). Default 2 MiB. */
  readonly readBytes?: number;
  /** How long a read waits for new entries. Default 1000 ms. */
  readonly blockMs?: number;
  /** Commands per `source` per second before `rate_limited`. Default 100000; 0 = no limit. */
  readonly ratePerSource?: number;
  /** MAXLEN ~ for the event stream and the dead-letter stream. Default 100000. */
  readonly maxLen?: number;
  /**
   * How many answers are kept to recognise a command that comes again: the last `dedupeWindow`
   * to 2 x `dedupeWindow` commands (two generations of P.results.layer.{L}; the older is dropped
   * when the newer fills). A copy arriving later than that is applied again. Default 100000,
   * as the event stream's MAXLEN: what is still in the event stream can be recognised.
   */
  readonly dedupeWindow?: number;
  /**
   * How often the control streams are trimmed of what their groups are done with, and the layer's
   * generation marker is checked (a Redis that lost its data is noticed then at the latest).
   * Default 5000 ms.
   */
  readonly houseKeepingMs?: number;
  /**
   * Commit attempts for a batch whose commit Redis refuses for a reason that is not an outage
   * (a script error, a key of the wrong type), before its entries are dead-lettered. Default 3.
   */
  readonly maxCommitAttempts?: number;
  /** Longest wait between attempts to commit a batch while Redis is away or refusing writes. Default 2000 ms. */
  readonly maxRetryDelayMs?: number;
  /** Entries a look-ahead for emergency stops reads per call. Default 1000. */
  readonly scanCount?: number;
  /**
   * The layer's lease holding this bridge runs under (`holder#token`, from Bus.lease): every commit
   * requires it, so once another owner takes the layer over this bridge writes nothing more and
   * stops with LayerFenced. Set by runLayerOwner; absent, the bridge runs without a lease.
   */
  readonly fence?: string;
  /**
   * The generation marker of the store this process served the layer from before (LayerBridge.generation):
   * a store that lacks it lost its data meanwhile, and the bridge refuses to start (LayerDataLost)
   * instead of taking the empty store for a new layer.
   */
  readonly generation?: string;
  /**
   * `partition` (default): each layer applies its commands in its stream's order. `causal` adds:
   * a command whose `metadata.depends_on` names another command's message_id (of this layer, or
   * of `metadata.depends_on_layer`) is applied only once that one was answered; the layer waits
   * for it (reading nothing newer), and answers `timeout` if it is not answered within the
   * command's `timeout_ms`.
   */
  readonly ordering?: Ordering;
}

/** How a layer orders the commands it applies (BridgeOptions.ordering). */
export type Ordering = "partition" | "causal";
export const ORDERINGS: readonly Ordering[] = ["partition", "causal"];

/** The default of every BridgeOptions field that has a fixed one (`namespace`, `topology`, `consumer` and `hmacKey` do not; `codec` is "reference" under the reference topology). */
export const BRIDGE_DEFAULTS = {
  codec: "msgpack" as Codec,
  maxSignedAgeMs: 60_000,
  maxBytes: 1_048_576,
  maxDeliveries: 5,
  readCount: 256,
  readBytes: 2 * 1_048_576,
  blockMs: 1_000,
  ratePerSource: 100_000,
  maxLen: 100_000,
  dedupeWindow: 100_000,
  houseKeepingMs: 5_000,
  maxCommitAttempts: 3,
  maxRetryDelayMs: 2_000,
  scanCount: 1_000,
  ordering: "partition" as Ordering,
  /** How often a causal command waiting for its dependency looks again. */
  dependencyPollMs: 25,
};

export type ResolvedBridgeOptions = typeof BRIDGE_DEFAULTS & {
  readonly namespace: string | undefined;
  readonly topology: Topology;
  readonly consumer: string;
  readonly hmacKey: HmacKey | undefined;
  readonly fence: string | undefined;
  readonly generation: string | undefined;
};

export const resolveBridgeOptions = (options: BridgeOptions, defaultConsumer: string): ResolvedBridgeOptions => {
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as BridgeOptions;
  const topology = options.topology ?? topologyFromEnv();
  const codec: Codec = options.codec ?? (topology === "reference" ? "reference" : BRIDGE_DEFAULTS.codec);
  return { ...BRIDGE_DEFAULTS, ...given, namespace: options.namespace, topology, codec, consumer: options.consumer ?? defaultConsumer, hmacKey: options.hmacKey, fence: options.fence, generation: options.generation } as ResolvedBridgeOptions;
};
