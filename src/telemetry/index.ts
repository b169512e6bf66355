/** Telemetry (docs/architecture.md "Data flow"): the publisher for Kasmina layers, the reader for Tamiyo. */
export { CLAIM_EXPIRED, makeTelemetryConsumer, type TelemetryConsumer, type TelemetryConsumerOptions, type TelemetryConsumerStats } from "./consumer.ts";
export { claimOf, type ClaimCheck } from "./claim-check.ts";
export { decodeTelemetryEntry, type TelemetryContent } from "./decode.ts";
export { frameColumn, frameOfReport, frameRecords, type TelemetryFrame } from "./frame.ts";
export { TELEMETRY_DEFAULTS, type TelemetryPublisherOptions } from "./options.ts";
export { makeTelemetryPublisher, type TelemetryPublisher, type TelemetryPublisherConfig, type TelemetryPublisherStats } from "./publisher.ts";
export type { SeedRecords, SeedRows, WindowInfo } from "./records.ts";
export {
  AGGREGATOR_DEFAULTS,
  makeTelemetryAggregator,
  TelemetryAggregator,
  type LayerWindowSummary,
  type MetricSummary,
  type TelemetryAggregatorOptions,
} from "./aggregate.ts";
export {
  ANOMALY_DEFAULTS,
  AnomalyDetector,
  metricDirection,
  recommendedAction,
  zScore,
  type AnomalyDetectorOptions,
  type MetricDirection,
  type ZScore,
} from "./anomaly.ts";
export { publishAlerts, telemetryAlerts, type PublishAlertsOptions, type TelemetryAlerts } from "./alerts.ts";
