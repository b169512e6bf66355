/** Telemetry (ARCHITECTURE.md "Data flow"): the publisher for Kasmina layers, the reader for Tamiyo. */
export { makeTelemetryConsumer, type TelemetryConsumer, type TelemetryConsumerOptions, type TelemetryConsumerStats } from "./consumer.ts";
export { claimOf, type ClaimCheck } from "./claim-check.ts";
export { decodeTelemetryEntry, type TelemetryContent } from "./decode.ts";
export { frameColumn, frameOfReport, frameRecords, type TelemetryFrame } from "./frame.ts";
export { TELEMETRY_DEFAULTS, type TelemetryPublisherOptions } from "./options.ts";
export { makeTelemetryPublisher, type TelemetryPublisher, type TelemetryPublisherConfig, type TelemetryPublisherStats } from "./publisher.ts";
export type { SeedRecords, SeedRows, WindowInfo } from "./records.ts";
