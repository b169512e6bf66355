import type { Codec } from "../protocol/codec.ts";
import type { HmacKey } from "../protocol/entry.ts";
import type { Topology } from "../protocol/streams.ts";

/** Everything a client can be told. Every default is written once, in CLIENT_DEFAULTS. */
export interface ClientOptions {
  /** Key namespace P. Default: ESPER_NAMESPACE, else "morphogenetic". */
  readonly namespace?: string;
  /** The names of the layers' streams (BridgeOptions.topology): use the topology the layers are served in. Default: ESPER_TOPOLOGY, else "esper". */
  readonly topology?: Topology;
  /** Codec of what the client writes. Default "msgpack"; "json" talks to reference readers. */
  readonly codec?: Codec;
  /**
   * The deployment's HMAC key: commands are signed with it (workers started with `--hmac-key-file` refuse unsigned ones), and
   * signed entries on followed streams are checked. Default: none (nothing signed or checked).
   */
  readonly hmacKey?: HmacKey;
  /** How long `send` waits for a result when the call names no time. Default: the command's timeout_ms + 1 s. */
  readonly defaultTimeoutMs?: number;
  /** How long one follower read waits. Default 1000 ms. */
  readonly followBlockMs?: number;
  /**
   * MAXLEN for control streams. Default null: none, since trimming by length drops commands no
   * worker has read yet when a backlog outgrows it; the layer's bridge trims what its group is
   * done with instead (Bus.trimDelivered).
   */
  readonly maxLen?: number | null;
}

export const CLIENT_DEFAULTS = {
  codec: "msgpack" as Codec,
  followBlockMs: 1_000,
  maxLen: null as number | null,
  /** Added to a command's timeout_ms when the call names no time: the answer needs its way back. */
  answerMarginMs: 1_000,
  /** timeout_ms of a command that names none (LifecycleTransitionCommand's default). */
  commandTimeoutMs: 5_000,
  /** Longest pause between re-sends of a command whose answer does not come (resendAfterMs doubles up to it). */
  maxResendDelayMs: 30_000,
};

/** Options of one `EsperClient.send`: how long to wait for the answer, and whether to re-send while waiting. */
export interface SendOptions {
  /** How long to wait for the result. Default: the client's defaultTimeoutMs, else the command's timeout_ms + 1 s. */
  readonly timeoutMs?: number;
  /**
   * Re-send the same entry (same message_id) when no result came after this many ms, doubling
   * each time, until the result arrives or `timeoutMs` passes. Off by default. Safe: the layer
   * applies a message_id once and answers copies with the first result, flagged `duplicate`.
   */
  readonly resendAfterMs?: number;
}
