/** Telemetry (ARCHITECTURE.md "Data flow"): the publisher for Kasmina layers, the reader for Tamiyo. */
export { makeTelemetryConsumer, type TelemetryConsumer, type TelemetryConsumerOptions, type TelemetryConsumerStats } from "./consumer.ts";
export { claimOf, decodeTelemetryEntry, type TelemetryContent } from "./decode.ts";
export { frameColumn, frameOfReport, frameRecords, type TelemetryFrame } from "./frame.ts";
export { TELEMETRY_DEFAULTS, type TelemetryPublisherOptions } from "./options.ts";
export { makeTelemetryPublisher, type TelemetryPublisher, type TelemetryPublisherConfig, type TelemetryPublisherStats } from "./publisher.ts";
export type { SeedRecords, SeedRows } from "./records.ts";
export type { ClaimCheck, WindowInfo } from "./report-writer.ts";
