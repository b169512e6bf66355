import { Effect, Result } from "effect";
import { describe, expect, it } from "vitest";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import * as P from "../../src/protocol/index.ts";
import { publishAlerts, telemetryAlerts } from "../../src/telemetry/alerts.ts";
import { FAST_PATHS, withFastPaths } from "./support.ts";
import { frameOf } from "./frames.ts";

const NS = "t";
const names = P.streams(NS);

const alertFor = (layer_id: string, severity: "warning" | "critical" = "critical") =>
  P.performanceAlert({
    layer_id,
    seed_id: null,
    alert_type: "degradation",
    severity,
    metric_name: "reconstruction_loss",
    metric_value: 1.5,
    threshold: 1.06,
    details: { z: 25, mean: 1, sd: 0.02, window: [60_000, 61_000] },
    recommended_action: `check the learning rate; consider an emergency stop of layer ${layer_id}`,
  });

describe.each(FAST_PATHS)("alerts on the event stream, fast paths %s,", (_, on) => {
  withFastPaths(on);

  it("are appended to each alert's layer's event stream, and read back as the same PerformanceAlert", async () => {
    const bus = new MemoryBus();
    const alerts = [alertFor("L1"), alertFor("L2", "warning")];
    const ids = await Effect.runPromise(publishAlerts(bus, alerts, { namespace: NS }));
    expect(ids).toHaveLength(2);
    for (const [i, layer] of ["L1", "L2"].entries()) {
      const stream = names.events(layer);
      const [entry] = await Effect.runPromise(bus.range(stream));
      expect(entry!.id).toBe(ids[i]);
      expect(entry!.fields.type).toBe("PerformanceAlert");
      const decoded = P.decodeEntry(stream, { ...entry!.fields });
      if (Result.isFailure(decoded)) throw decoded.failure;
      expect(decoded.success).toEqual(alerts[i]);
    }
  });

  it("are signed with the deployment's key and written in the codec asked for", async () => {
    const bus = new MemoryBus();
    await Effect.runPromise(publishAlerts(bus, [alertFor("L1")], { namespace: NS, codec: "json", hmacKey: "secret" }));
    const stream = names.events("L1");
    const [entry] = await Effect.runPromise(bus.range(stream));
    expect(entry!.fields.enc).toBe("json");
    expect(Result.isSuccess(P.decodeEntry(stream, { ...entry!.fields }, { hmacKey: "secret", requireSig: true }))).toBe(true);
  });

  it("write nothing when there are none", async () => {
    const bus = new MemoryBus();
    expect(await Effect.runPromise(publishAlerts(bus, [], { namespace: NS }))).toEqual([]);
    expect(await Effect.runPromise(bus.length(names.events("L1")))).toBe(0);
  });
});

describe("telemetryAlerts, Tamiyo's alert source", () => {
  it("raises an alert for a step in a layer's telemetry once the window holding it has closed", () => {
    let now = 0;
    const source = telemetryAlerts({ aggregator: { now: () => now } });
    const raised: P.PerformanceAlert[] = [];
    for (let w = 0; w < 30; w++) {
      now = w * 1_000;
      const level = w < 25 ? 1 : 2;
      // Two frames a window, the seeds spread around the level.
      source.add(frameOf("L1", [0, 1, 2], { reconstruction_loss: [level - 0.01, level, level + 0.01 + (w % 3) * 0.001] }));
      source.add(frameOf("L1", [3], { reconstruction_loss: [level] }));
      expect(source.flush(now + 999)).toEqual([]);
      raised.push(...source.flush(now + 1_000));
    }
    expect(raised.map((a) => [a.layer_id, a.metric_name, a.alert_type, a.severity, a.details.window])).toEqual([
      ["L1", "reconstruction_loss", "degradation", "critical", [25_000, 26_000]],
    ]);
    expect(source.aggregator.latest("L1").get(3)).toEqual({ reconstruction_loss: 2 });
  });
});
