import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { DEFAULT_NAMESPACE, GROUPS, isControlStream, isTelemetryStream, layerOf, namespaceFromEnv, parseKey, streams } from "../../src/protocol/streams.ts";

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

  it.each([["foo"], ["p.control.layer.L1"], ["p.control.layer.{L1}.x"], ["P.control.all"], ["p.control.layer.{a b}"]])(
    "%j is not one of ours",
    (key) => {
      expect(parseKey(key)).toBeUndefined();
    },
  );
});
