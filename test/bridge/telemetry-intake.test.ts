/**
 * Epoch ticks and guard metrics reach a layer as messages on its telemetry stream (read by its
 * owner in group `kasmina`), and what they change is persisted: a restarted worker loses no
 * dwell time. On both buses.
 */
import { beforeEach, describe, expect, test } from "vitest";
import { encodeEntry } from "../../src/protocol/entry.ts";
import { layerHealthReport, seedMetricsSnapshot } from "../../src/protocol/make.ts";
import { lifecycle } from "../runtime/commands.ts";
import { BUS_KINDS, openClient, openFixture, publishRaw, run, startBridge, type Fixture } from "./harness.ts";

describe.each(BUS_KINDS)("on %s, a layer's telemetry stream", (kind) => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await openFixture(kind);
  });

  const report = (epoch: number | undefined, health: Record<string, Record<string, number>> = {}) => {
    const stream = fx.names.telemetry("a");
    return publishRaw(
      fx,
      stream,
      encodeEntry(
        layerHealthReport({
          layer_id: "a",
          total_seeds: 4,
          active_seeds: 1,
          health_metrics: health,
          performance_summary: epoch === undefined ? {} : { epoch, loss: 0.3 },
          telemetry_window: [0, 1],
          source: "trainer",
        }),
        { stream },
      ),
    );
  };

  test("carries the trainer's epoch count and the guard metrics into the seeds, counted once, and persisted for the next worker", async () => {
    let worker = await startBridge(fx);
    const client = await openClient(fx);
    for (const target of ["GERMINATED", "TRAINING"]) expect((await client.send(lifecycle("a", 0, target))).code).toBe("ok");

    const stream = fx.names.telemetry("a");
    await run(worker.bridge.settled(stream, await report(60)));
    expect(worker.host.epochsInState(0)).toBe(60);
    // The same epoch again (a replica, a redelivery) and an older one (a replica lagging behind): no tick.
    await report(60);
    await run(worker.bridge.settled(stream, await report(40)));
    expect(worker.host.epochsInState(0)).toBe(60);
    await run(worker.bridge.settled(stream, await report(100, { "0": { reconstruction_loss: 0.004, mean: 3.5 } })));
    expect(worker.host.epochsInState(0)).toBe(100);
    // Guard metrics go into the seed; the rest of the telemetry is Tamiyo's.
    expect(worker.host.seed(0).context.metrics).toEqual({ reconstruction_loss: 0.004 });
    expect(worker.bridge.stats()).toMatchObject({ telemetry: 4, telemetryRejected: 0 });

    await worker.close();
    worker = await startBridge(fx);
    expect(worker.host.record.epoch).toBe(100);
    expect(worker.host.epochsInState(0)).toBe(100);
    expect(worker.host.table.row(0).epochsInState).toBe(100);
    expect(worker.host.seed(0).context.metrics).toEqual({ reconstruction_loss: 0.004 });
    // The guards judge what the telemetry brought: 100 epochs of TRAINING and a low reconstruction loss.
    expect(await client.send(lifecycle("a", 0, "GRAFTING"))).toMatchObject({ code: "ok" });
  });

  test("takes SeedMetricsSnapshots too, and counts an entry it cannot read without stopping", async () => {
    const worker = await startBridge(fx);
    const stream = fx.names.telemetry("a");
    const snapshot = seedMetricsSnapshot({ layer_id: "a", seed_id: 2, lifecycle_state: "DORMANT", metrics: { performance_delta: 0.02, stability_score: 0.9, gpu: 1 } });
    await publishRaw(fx, stream, { data: new Uint8Array([0xc1]), type: "LayerHealthReport", enc: "msgpack" });
    await run(worker.bridge.settled(stream, await publishRaw(fx, stream, encodeEntry(snapshot, { stream }))));
    expect(worker.host.seed(2).context.metrics).toEqual({ performance_delta: 0.02, stability_score: 0.9 });
    expect(worker.bridge.stats()).toMatchObject({ telemetry: 2, telemetryRejected: 1 });
  });
});
