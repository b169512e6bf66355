import { Result } from "effect";
import { afterEach, beforeEach, expect } from "vitest";
import { decodeEntry, type DecodeOptions } from "../../src/protocol/entry.ts";
import { setFastPaths } from "../../src/protocol/fast/switch.ts";
import type { SeedMetricsSnapshot } from "../../src/protocol/messages.ts";
import type { TelemetryContent } from "../../src/telemetry/decode.ts";
import { frameOfReport, type TelemetryFrame } from "../../src/telemetry/frame.ts";

/** The reference reading of a telemetry entry: the protocol's decodeEntry, then the object-to-frame conversion. */
export const slowDecode = (stream: string, fields: Readonly<Record<string, unknown>>, options: DecodeOptions = {}): Result.Result<TelemetryContent, unknown> => {
  const decoded = decodeEntry(stream, fields, options);
  if (Result.isFailure(decoded)) return Result.fail(decoded.failure);
  const m = decoded.success;
  const frames: TelemetryFrame[] = [];
  const snapshots: SeedMetricsSnapshot[] = [];
  const add = (r: typeof m) => {
    if (r.message_type === "LayerHealthReport") frames.push(frameOfReport(r));
    else if (r.message_type === "SeedMetricsSnapshot") snapshots.push(r);
  };
  if (m.message_type === "TelemetryBatch") m.messages.forEach(add);
  else add(m);
  return Result.succeed({ frames, snapshots });
};

/** A frame in a form toEqual can compare: order of seeds and columns aside, NaN cells left out. */
export const canonical = (frame: TelemetryFrame) => {
  const records: Record<string, Record<string, number>> = {};
  frame.seeds.forEach((seed, i) => {
    const metrics: Record<string, number> = {};
    frame.columns.forEach((name, c) => {
      const v = frame.values[c]![i]!;
      if (!Number.isNaN(v)) metrics[name] = v;
    });
    records[String(seed)] = metrics;
  });
  const { seeds: _s, columns: _c, values: _v, ...envelope } = frame;
  return { ...envelope, records };
};

export const expectSameContent = (fast: Result.Result<TelemetryContent, unknown>, slow: Result.Result<TelemetryContent, unknown>) => {
  expect(Result.isSuccess(fast)).toBe(Result.isSuccess(slow));
  if (Result.isSuccess(fast) && Result.isSuccess(slow)) {
    expect(fast.success.frames.map(canonical)).toEqual(slow.success.frames.map(canonical));
    expect(fast.success.snapshots).toEqual(slow.success.snapshots);
  }
};

/** Both settings of the fast-path switch, for `describe.each`. */
export const FAST_PATHS = [
  ["on", true],
  ["off", false],
] as const;

/** In the describe block that calls it, every test runs with fast paths `on` or off; the setting before comes back after. */
export const withFastPaths = (on: boolean): void => {
  let before = true;
  beforeEach(() => {
    before = setFastPaths(on);
  });
  afterEach(() => {
    setFastPaths(before);
  });
};
