/**
 * From telemetry to alerts on the event stream: aggregation (aggregate.ts) and anomaly
 * detection (anomaly.ts) put together as Tamiyo's AlertSource, and the PerformanceAlerts written
 * to `P.event.layer.{L}`, where operators and other controllers read events (docs/protocol.md).
 */
import { Effect } from "effect";
import type { Bus, BusError, EntryFields } from "../bus/bus.ts";
import type { Codec } from "../protocol/codec.ts";
import { encodeEntry, type HmacKey } from "../protocol/entry.ts";
import type { PerformanceAlert } from "../protocol/messages.ts";
import { streams as streamNames } from "../protocol/streams.ts";
import { TelemetryAggregator, type TelemetryAggregatorOptions } from "./aggregate.ts";
import { AnomalyDetector, type AnomalyDetectorOptions } from "./anomaly.ts";
import type { TelemetryFrame } from "./frame.ts";

/**
 * Aggregation and anomaly detection as one AlertSource, made by `telemetryAlerts()`: pass it as
 * Tamiyo's `alerts`. Frames go into per-layer windows (1000 ms by default); `flush` closes the
 * windows that ended and judges each metric's window mean by a rolling z-score (docs/tamiyo.md "Alerts").
 */
export interface TelemetryAlerts {
  /** Folds a telemetry frame into its layer's current window. */
  readonly add: (frame: TelemetryFrame) => void;
  /** Closes the windows ended by `nowMs` and judges them; the alerts they raise. */
  readonly flush: (nowMs: number) => readonly PerformanceAlert[];
  /** The windows, and each seed's latest metrics. */
  readonly aggregator: TelemetryAggregator;
  /** The rolling z-score baselines the windows are judged against. */
  readonly detector: AnomalyDetector;
}

/** Tamiyo's `alerts` (AlertSource): frames in, alerts out once their window has closed. */
export const telemetryAlerts = (
  options: { readonly aggregator?: Omit<TelemetryAggregatorOptions, "onWindow">; readonly anomaly?: AnomalyDetectorOptions } = {},
): TelemetryAlerts => {
  const aggregator = new TelemetryAggregator(options.aggregator);
  const detector = new AnomalyDetector(options.anomaly);
  return {
    add: (frame) => aggregator.add(frame),
    flush: (nowMs) => aggregator.flush(nowMs).flatMap((summary) => detector.observe(summary)),
    aggregator,
    detector,
  };
};

/** How `publishAlerts` writes alerts: the streams' namespace, the codec, and the key to sign with. */
export interface PublishAlertsOptions {
  /** Key namespace P. Default: ESPER_NAMESPACE, else "morphogenetic". */
  readonly namespace?: string;
  /** Default the protocol's (msgpack); "json" for reference readers. */
  readonly codec?: Codec;
  /** The deployment's key: entries are signed (docs/protocol.md `sig`). */
  readonly hmacKey?: HmacKey;
}

/**
 * Appends each alert to its layer's event stream, in one round trip; returns the entry ids in
 * order. Always encoded, also on an in-process bus: alerts are few, and an operator's tools
 * read them as bytes.
 */
export const publishAlerts = (bus: Bus, alerts: readonly PerformanceAlert[], options: PublishAlertsOptions = {}): Effect.Effect<readonly string[], BusError> =>
  Effect.suspend(() => {
    if (alerts.length === 0) return Effect.succeed([]);
    const names = streamNames(options.namespace);
    const entries = alerts.map((alert): { stream: string; fields: EntryFields } => {
      const stream = names.events(alert.layer_id);
      return {
        stream,
        fields: encodeEntry(alert, { stream, ...(options.codec === undefined ? {} : { codec: options.codec }), ...(options.hmacKey === undefined ? {} : { hmacKey: options.hmacKey }) }),
      };
    });
    return bus.publishMany(entries);
  });
