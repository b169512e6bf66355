import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { DEFAULT_NAMESPACE, DEFAULT_TOPOLOGY, GROUPS, isControlStream, isTelemetryStream, layerOf, namespaceFromEnv, parseKey, streams, topologyFromEnv } from "../../src/protocol/streams.ts";

describe("key names are exactly docs/protocol.md's", () => {
  const s = streams("morphogenetic");
  it.each([
    [s.control("L1"), "morphogenetic.control.layer.{L1}"],
    [s.controlAll, "morphogenetic.control.all"],
    [s.events("L1"), "morphogenetic.event.layer.{L1}"],
    [s.telemetry("L1"), "morphogenetic.telemetry.layer.{L1}"],
    [s.dlq("L1"), "morphogenetic.dlq.layer.{L1}"],
    [s.dlqAll, "morphogenetic.dlq.all"],
    [s.coordination, "morphogenetic.coordination"],
    [s.state("L1"), "morphogenetic.state.layer.{L1}"],
    [s.results("L1"), "morphogenetic.results.layer.{L1}"],
    [s.layerKey("claim", "L1"), "morphogenetic.claim.layer.{L1}"],
  ])("%s", (built, expected) => {
    expect(built).toBe(expected);
  });

  it("uses the given namespace", () => {
    expect(streams("test-7").control("a_b")).toBe("test-7.control.layer.{a_b}");
  });

  it("names the consumer groups", () => {
    expect(GROUPS).toEqual({ kasmina: "kasmina", tamiyo: "tamiyo" });
  });
});

describe("validation", () => {
  it.each([["Upper"], [""], ["a".repeat(33)], ["dot.ted"], ["sp ace"]])("rejects namespace %j", (ns) => {
    expect(() => streams(ns)).toThrow(RangeError);
  });

  it.each([[""], ["a".repeat(65)], ["{x}"], ["a.b"], ["a b"]])("rejects layer id %j", (layer) => {
    expect(() => streams("p").control(layer)).toThrow(RangeError);
  });

  it("rejects a key kind that would break parsing", () => {
    expect(() => streams("p").layerKey("a.b", "L")).toThrow(RangeError);
  });
});

describe("namespaceFromEnv", () => {
  it("defaults to morphogenetic", () => {
    expect(namespaceFromEnv({})).toBe(DEFAULT_NAMESPACE);
    expect(namespaceFromEnv({ ESPER_NAMESPACE: "" })).toBe(DEFAULT_NAMESPACE);
  });
  it("reads ESPER_NAMESPACE", () => {
    expect(namespaceFromEnv({ ESPER_NAMESPACE: "staging" })).toBe("staging");
  });
  it("refuses an invalid ESPER_NAMESPACE instead of building bad keys", () => {
    expect(() => namespaceFromEnv({ ESPER_NAMESPACE: "Staging!" })).toThrow(/ESPER_NAMESPACE/);
  });
});

describe("parsing keys back", () => {
  const namespace = fc.stringMatching(/^[a-z0-9_-]{1,32}$/);
  const layer = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);

  test.prop([namespace, layer], { numRuns: 1_000 })("layerOf recovers the layer of every per-layer key", (ns, l) => {
    const s = streams(ns);
    for (const key of [s.control(l), s.events(l), s.telemetry(l), s.dlq(l), s.state(l), s.results(l)]) {
      expect(layerOf(key)).toBe(l);
      expect(key).toContain(`{${l}}`);
      expect(parseKey(key)?.namespace).toBe(ns);
    }
    expect(s.dlqFor(s.control(l))).toBe(s.dlq(l));
  });

  test.prop([namespace, layer], { numRuns: 300 })("only telemetry keys are telemetry streams, only control keys control streams", (ns, l) => {
    const s = streams(ns);
    expect(isTelemetryStream(s.telemetry(l))).toBe(true);
    for (const key of [s.control(l), s.events(l), s.dlq(l), s.controlAll, s.coordination]) expect(isTelemetryStream(key)).toBe(false);
    expect(isControlStream(s.control(l))).toBe(true);
    expect(isControlStream(s.controlAll)).toBe(true);
    for (const key of [s.telemetry(l), s.events(l), s.coordination, s.dlqAll]) expect(isControlStream(key)).toBe(false);
  });

  it("shared keys have no layer and dead-letter to dlq.all", () => {
    const s = streams("p");
    expect(parseKey(s.controlAll)).toEqual({ namespace: "p", kind: "control" });
    expect(parseKey(s.coordination)).toEqual({ namespace: "p", kind: "coordination" });
    expect(layerOf(s.coordination)).toBeUndefined();
    expect(s.dlqFor(s.controlAll)).toBe("p.dlq.all");
    expect(s.dlqFor(s.coordination)).toBe("p.dlq.all");
  });

  it.each([["foo"], ["p.control.layer.L1.seed.3"], ["p.control.layer.{L1}.x"], ["P.control.all"], ["p.control.layer.{a b}"]])(
    "%j is not one of ours",
    (key) => {
      expect(parseKey(key)).toBeUndefined();
    },
  );
});

describe("the reference topology: the reference implementation's stream names", () => {
  const s = streams("morphogenetic", "reference");
  it.each([
    [s.control("L1"), "morphogenetic.control.layer.L1"],
    [s.events("L1"), "morphogenetic.event.layer.L1"],
    [s.telemetry("L1"), "morphogenetic.telemetry.aggregated.layer.L1"],
    [s.reference!.ack("L1"), "morphogenetic.control.ack.layer.L1"],
    [s.reference!.eventsOf("StateTransitionEvent", "L1"), "morphogenetic.event.statetransitionevent.layer.L1"],
    [s.reference!.telemetryBatch, "morphogenetic.telemetry.batch"],
  ])("%s", (built, expected) => {
    expect(built).toBe(expected);
  });

  it("keeps esper's names for the keys no reference program touches, so a layer's store and lease are the same in both topologies", () => {
    const esper = streams("morphogenetic", "esper");
    for (const name of ["controlAll", "dlqAll", "coordination"] as const) expect(s[name]).toBe(esper[name]);
    for (const key of [s.dlq, s.state, s.results, s.resultsOld]) expect(key("L1")).toMatch(/\.layer\.\{L1\}$/);
    expect(s.layerKey("lease", "L1")).toBe(esper.layerKey("lease", "L1"));
    expect(esper.reference).toBeUndefined();
  });

  it("reads its names back: their layer, their dead-letter stream, and which are control or telemetry", () => {
    expect(parseKey(s.control("L1"))).toEqual({ namespace: "morphogenetic", kind: "control", layer: "L1" });
    expect(parseKey(s.reference!.ack("L1"))).toEqual({ namespace: "morphogenetic", kind: "control.ack", layer: "L1" });
    for (const key of [s.control("L1"), s.events("L1"), s.telemetry("L1"), s.reference!.ack("L1"), s.reference!.eventsOf("BlueprintEvent", "L1")]) {
      expect(layerOf(key)).toBe("L1");
      expect(s.dlqFor(key)).toBe("morphogenetic.dlq.layer.{L1}");
    }
    expect(s.dlqFor(s.reference!.telemetryBatch)).toBe("morphogenetic.dlq.all");
    expect(isControlStream(s.control("L1"))).toBe(true);
    expect(isControlStream(s.reference!.ack("L1"))).toBe(false);
    expect(isTelemetryStream(s.telemetry("L1"))).toBe(true);
    expect(isTelemetryStream(s.reference!.telemetryBatch)).toBe(true);
    expect(isTelemetryStream(s.events("L1"))).toBe(false);
  });

  it("rejects an unknown topology", () => {
    expect(() => streams("p", "cluster" as "esper")).toThrow(RangeError);
  });

  it("topologyFromEnv: esper by default, ESPER_TOPOLOGY when set, an unknown one refused", () => {
    expect(topologyFromEnv({})).toBe(DEFAULT_TOPOLOGY);
    expect(DEFAULT_TOPOLOGY).toBe("esper");
    expect(topologyFromEnv({ ESPER_TOPOLOGY: "" })).toBe("esper");
    expect(topologyFromEnv({ ESPER_TOPOLOGY: "reference" })).toBe("reference");
    expect(() => topologyFromEnv({ ESPER_TOPOLOGY: "Reference" })).toThrow(/ESPER_TOPOLOGY/);
  });
});
