import { Effect, Exit, Scope } from "effect";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Bus } from "../../src/bus/bus.ts";
import { listDeadLetters } from "../../src/bus/dead-letters.ts";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import * as P from "../../src/protocol/index.ts";
import { CLAIM_EXPIRED, makeTelemetryConsumer, type TelemetryConsumerOptions } from "../../src/telemetry/consumer.ts";
import type { TelemetryContent } from "../../src/telemetry/decode.ts";
import { makeTelemetryPublisher, type TelemetryPublisherConfig } from "../../src/telemetry/publisher.ts";
import { SAMPLES } from "../protocol/samples.ts";
import { canonical, FAST_PATHS, withFastPaths } from "./support.ts";

const NS = "t";
const names = P.streams(NS);
const scopes: Scope.Closeable[] = [];
afterEach(async () => {
  for (const scope of scopes.splice(0)) await Effect.runPromise(Scope.close(scope, Exit.void));
});

const open = async <A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<A> => {
  const scope = await Effect.runPromise(Scope.make());
  scopes.push(scope);
  return Effect.runPromise(Scope.provide(scope)(effect));
};

const setup = async (publisherConfig: TelemetryPublisherConfig = {}, consumerOptions: Partial<TelemetryConsumerOptions> = {}) => {
  const bus: Bus = new MemoryBus();
  const got: TelemetryContent[] = [];
  const publisher = await open(makeTelemetryPublisher(bus, { namespace: NS, ...publisherConfig }));
  const consumer = await open(
    makeTelemetryConsumer(bus, { namespace: NS, layers: ["L1"], consumer: "tamiyo-1", blockMs: 20, onTelemetry: (c) => got.push(c), ...consumerOptions }),
  );
  return { bus, publisher, consumer, got };
};

describe.each(FAST_PATHS)("Tamiyo's telemetry reader, fast paths %s,", (_, on) => {
  withFastPaths(on);

  it("delivers each entry's frames in stream order and acks them", async () => {
    const { bus, publisher, consumer, got } = await setup({ batchSize: 4 });
    publisher.publishWindow("L1", { window: [0, 1] }, { columns: ["mean"], rows: Float32Array.from({ length: 10 }, (_, i) => i) });
    await Effect.runPromise(publisher.flush);
    await vi.waitFor(() => expect(consumer.stats().records).toBe(10), { timeout: 2_000 });
    expect(got.flatMap((c) => c.frames.flatMap((f) => [...f.seeds]))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(consumer.stats()).toMatchObject({ entries: 3, frames: 3, rejected: 0 });
    await vi.waitFor(async () => expect(await Effect.runPromise(bus.pending(names.telemetry("L1"), "tamiyo"))).toEqual([]));
  });

  it("reads snapshots written by other programs", async () => {
    const { bus, consumer, got } = await setup();
    await Effect.runPromise(bus.publish(names.telemetry("L1"), P.encodeEntry(SAMPLES.SeedMetricsSnapshot, { stream: names.telemetry("L1"), codec: "json" })));
    await vi.waitFor(() => expect(consumer.stats().snapshots).toBe(1), { timeout: 2_000 });
    expect(got[0]!.snapshots).toEqual([SAMPLES.SeedMetricsSnapshot]);
  });

  it("dead-letters an entry it can never read, with the reason, and goes on", async () => {
    const { bus, publisher, consumer } = await setup();
    await Effect.runPromise(bus.publish(names.telemetry("L1"), { data: new Uint8Array([0xc1]), type: "LayerHealthReport", enc: "msgpack" }));
    publisher.publishWindow("L1", { window: [0, 1] }, { "3": { mean: 1 } });
    await Effect.runPromise(publisher.flush);
    await vi.waitFor(() => expect(consumer.stats()).toMatchObject({ rejected: 1, records: 1 }), { timeout: 2_000 });
    const [letter] = await Effect.runPromise(bus.range(names.dlq("L1")));
    expect(letter!.fields).toMatchObject({ stream: names.telemetry("L1"), code: "invalid_message" });
  });

  it("fetches a claim-checked payload and delivers its seeds, as if it had come inline", async () => {
    const { consumer, publisher, got } = await setup({ claimCheckThreshold: 500, maxEntryBytes: 1e9 });
    publisher.publishWindow("L1", { window: [0, 1] }, { columns: ["mean", "alpha"], rows: Float32Array.from({ length: 400 }, (_, i) => i) });
    await Effect.runPromise(publisher.flush);
    await vi.waitFor(() => expect(consumer.stats()).toMatchObject({ claims: 1, records: 200 }), { timeout: 2_000 });
    expect(canonical(got[0]!.frames[0]!).records["199"]).toEqual({ mean: 398, alpha: 399 });
  });

  it("dead-letters a reference whose payload was trimmed from the claim stream (claim_expired), counts it lost, and reads on", async () => {
    const bus: Bus = new MemoryBus();
    const publisher = await open(makeTelemetryPublisher(bus, { namespace: NS, claimCheckThreshold: 500, maxEntryBytes: 1e9 }));
    publisher.publishWindow("L1", { window: [0, 1] }, { columns: ["mean"], rows: new Float32Array(300) });
    await Effect.runPromise(publisher.flush);
    const claimKey = names.layerKey("claim", "L1");
    const [payload] = await Effect.runPromise(bus.range(claimKey));
    await Effect.runPromise(bus.trim(claimKey, 0));
    publisher.publishWindow("L1", { window: [1, 2] }, { "7": { mean: 3 } });
    await Effect.runPromise(publisher.flush);
    const [reference] = await Effect.runPromise(bus.range(names.telemetry("L1")));

    const got: TelemetryContent[] = [];
    const consumer = await open(makeTelemetryConsumer(bus, { namespace: NS, layers: ["L1"], blockMs: 20, onTelemetry: (c) => got.push(c) }));
    await vi.waitFor(() => expect(consumer.stats()).toMatchObject({ claimsLost: 1, rejected: 1, entries: 1, records: 1 }), { timeout: 2_000 });
    expect(got.flatMap((c) => c.frames.map((f) => canonical(f).records))).toEqual([{ "7": { mean: 3 } }]);

    const [letter] = await Effect.runPromise(listDeadLetters(bus, names.dlq("L1")));
    expect(letter).toMatchObject({ stream: names.telemetry("L1"), id: reference!.id, code: CLAIM_EXPIRED });
    expect(letter!.fields).toEqual(reference!.fields);
    expect(letter!.error).toContain(claimKey);
    expect(letter!.error).toContain(payload!.id);
    expect(letter!.error).toContain("claimMaxLen");
    await vi.waitFor(async () => expect(await Effect.runPromise(bus.pending(names.telemetry("L1"), "tamiyo"))).toEqual([]));
  });

  it("dead-letters a reference whose payload is there but cannot be decoded, with the decoder's code, and reads on", async () => {
    const { bus, publisher, consumer, got } = await setup();
    const claimKey = names.layerKey("claim", "L1");
    const garbage = await Effect.runPromise(bus.publish(claimKey, { data: new Uint8Array([0xc1]), type: "LayerHealthReport", enc: "msgpack" }));
    const reference = P.layerHealthReport({
      layer_id: "L1",
      total_seeds: 300,
      active_seeds: 300,
      telemetry_window: [0, 1],
      metadata: { claim_check: { key: claimKey, id: garbage, type: "LayerHealthReport", enc: "msgpack", bytes: 1, records: 300 } },
    });
    const stream = names.telemetry("L1");
    await Effect.runPromise(bus.publish(stream, P.encodeEntry(reference, { stream })));
    publisher.publishWindow("L1", { window: [1, 2] }, { "7": { mean: 3 } });
    await Effect.runPromise(publisher.flush);

    await vi.waitFor(() => expect(consumer.stats()).toMatchObject({ claimsLost: 1, claims: 0, rejected: 1, records: 1 }), { timeout: 2_000 });
    expect(got.flatMap((c) => c.frames.map((f) => canonical(f).records))).toEqual([{ "7": { mean: 3 } }]);
    const [letter] = await Effect.runPromise(listDeadLetters(bus, names.dlq("L1")));
    expect(letter).toMatchObject({ stream, code: "invalid_message" });
    expect(letter!.error).toContain(`claim-check payload ${garbage} of ${claimKey} cannot be read`);
  });
});
