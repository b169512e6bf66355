/**
 * The HTML report of `esper demo`: one self-contained page that loads nothing, escapes what came
 * from the network, and survives a record with no seeds and NaN losses.
 */
import { describe, expect, test } from "vitest";
import type { DemoRecord, EpochPoint, RunRecord } from "../../src/demo/record.ts";
import { renderReport } from "../../src/demo/report-html.ts";

const INJECTED = "<script>alert(1)</script>";

const epochs = (accs: readonly number[], params: (i: number) => number): EpochPoint[] =>
  accs.map((acc, i) => ({
    epoch: i + 1,
    trainLoss: 1.2 / (i + 1),
    trainAcc: acc + 0.01,
    valLoss: 1.3 / (i + 1),
    valAcc: acc - 0.01,
    testAcc: acc,
    params: params(i),
    seeds: {},
  }));

const run = (name: string, e: EpochPoint[]): RunRecord => ({
  name,
  epochs: e,
  finalTestAcc: e[e.length - 1]!.testAcc,
  params: e[e.length - 1]!.params,
  seconds: 12.5,
});

const fixture: DemoRecord = {
  title: "Spirals & rings",
  startedAt: "2025-01-02T03:04:05.000Z",
  config: { architecture: "mlp 2-64-64-3", strategy: "linear", epochs: 5, seed: 42, wasm: false },
  host: run("host", epochs([0.6, 0.75, 0.84, 0.89, 0.912], () => 10_000)),
  grown: run("grown", epochs([0.6, 0.78, 0.87, 0.91, 0.931], (i) => (i < 2 ? 10_000 : 12_345))),
  seeds: [
    {
      layerId: "dense1",
      seedId: 3,
      blueprint: "lateral_mlp",
      steps: [
        { state: "GERMINATED", epoch: 0.5, reason: "plateau" },
        { state: "TRAINING", epoch: 0.5, reason: "blueprint ready" },
        { state: "GRAFTING", epoch: 1.5, reason: "loss converged" },
        { state: "STABILIZATION", epoch: 2, reason: "alpha 1" },
        { state: "EVALUATING", epoch: 2.5, reason: "stable" },
        { state: "FINE_TUNING", epoch: 3, reason: "helps" },
        { state: "FOSSILIZED", epoch: 3.5, reason: "kept" },
      ],
    },
    {
      layerId: "dense1",
      seedId: 11,
      blueprint: "bottleneck",
      steps: [
        { state: "GERMINATED", epoch: 1, reason: "plateau" },
        { state: "TRAINING", epoch: 1, reason: "blueprint ready" },
        { state: "CULLED", epoch: 2.25, reason: `no gain ${INJECTED} & worse` },
      ],
    },
    {
      layerId: "dense2",
      seedId: 0,
      blueprint: null,
      steps: [
        { state: "GERMINATED", epoch: 4, reason: "plateau" },
        { state: "TRAINING", epoch: 4.2, reason: "blueprint ready" },
      ],
    },
  ],
  decisions: [
    {
      epoch: 0.5,
      kind: "germinate",
      layerId: "dense1",
      seedId: 3,
      action: "germinate with lateral_mlp",
      reason: "val loss plateaued",
      numbers: { plateau: 0.0012346, patience: 3 },
      outcome: { success: true, code: "ok", error: null },
    },
    {
      epoch: 2.25,
      kind: "cull",
      layerId: "dense1",
      seedId: 11,
      action: "TRAINING -> CULLED",
      reason: `gain ${INJECTED} & below threshold`,
      numbers: { gain: -0.000123456, threshold: 0.001 },
      outcome: { success: true, code: "ok", error: null },
    },
    {
      epoch: 3.1,
      kind: "advance",
      layerId: "dense1",
      seedId: 3,
      action: "FINE_TUNING -> FOSSILIZED",
      reason: "improves val acc",
      numbers: { delta: 123456.7 },
      outcome: { success: false, code: "guard_failed", error: "not stable <yet>" },
    },
    { epoch: 4, kind: "hold", layerId: "dense2", seedId: null, action: "hold", reason: "budget", numbers: {} },
  ],
  alerts: [
    {
      epoch: 2.2,
      layerId: "dense1",
      seedId: 11,
      severity: "warning",
      metric: "gradient_norm",
      value: 12.34567,
      threshold: 10,
      recommendedAction: "cull",
    },
  ],
  summary: {
    hostAcc: 0.912,
    grownAcc: 0.931,
    deltaPts: 1.9,
    paramsHost: 10_000,
    paramsGrown: 12_345,
    germinated: 3,
    fossilized: 1,
    culled: 1,
  },
};

const BALANCED = ["html", "head", "body", "table", "tr", "svg", "g", "div", "section"];

/** Every opened tag among BALANCED is closed, innermost first; returns the first mismatch. */
const tagBalance = (html: string): string | null => {
  const open: string[] = [];
  const re = new RegExp(`<(/?)(${BALANCED.join("|")})\\b[^>]*?(/?)>`, "gi");
  for (const m of html.matchAll(re)) {
    const [, closing, name, selfClosing] = m;
    const tag = name!.toLowerCase();
    if (selfClosing) continue;
    if (!closing) open.push(tag);
    else if (open.pop() !== tag) return `</${tag}> at ${m.index}`;
  }
  return open.length ? `unclosed <${open.join("> <")}>` : null;
};

/** The markup between the first `<tag ... class="cls"` and its matching close (no nesting of tag). */
const element = (html: string, tag: string, cls: string): string => {
  const start = html.indexOf(`<${tag} class="${cls}"`);
  expect(start, `<${tag} class="${cls}">`).toBeGreaterThanOrEqual(0);
  return html.slice(start, html.indexOf(`</${tag}>`, start));
};
const chart = (html: string, id: string): string => {
  const start = html.indexOf(`data-chart="${id}"`);
  expect(start, `chart ${id}`).toBeGreaterThanOrEqual(0);
  return html.slice(html.lastIndexOf("<svg", start), html.indexOf("</svg>", start));
};
const headerOf = (html: string): string => html.slice(html.indexOf("<header>"), html.indexOf("</header>"));
const occurrences = (text: string, needle: string): number => text.split(needle).length - 1;

describe("renderReport", () => {
  const html = renderReport(fixture);

  test("is an HTML5 document whose chosen tags all close in order", () => {
    expect(html).toMatch(/^<!doctype html>/i);
    expect(tagBalance(html)).toBeNull();
  });

  test("references nothing outside the page", () => {
    expect(html).not.toMatch(/\b(?:src|href)\s*=/i);
    expect(html).not.toMatch(/url\(/i);
    expect(html).not.toMatch(/@import/i);
    // An SVG namespace would be the one tolerated mention of a URL; nothing else may name one.
    expect(html.replaceAll('xmlns="http://www.w3.org/2000/svg"', "")).not.toMatch(/https?:|\/\/[a-z0-9.-]+\.[a-z]{2,}/i);
  });

  test("shows the injected script only escaped, and escapes & in reasons and the title", () => {
    expect(html).not.toMatch(/<script/i);
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(html).toContain("gain &lt;script&gt;alert(1)&lt;/script&gt; &amp; below threshold");
    expect(html).toContain("not stable &lt;yet&gt;");
    expect(html).toContain("<title>Spirals &amp; rings</title>");
  });

  test("headlines both accuracies, the delta, parameters with their ratio and the seed counts", () => {
    const head = headerOf(html);
    expect(head).toContain("91.2%");
    expect(head).toContain("93.1%");
    expect(head).toContain("+1.9 pts");
    expect(head).toContain("10,000 → 12,345");
    expect(head).toContain("×1.23");
    expect(head).toContain("3 / 1 / 1");
    expect(html).toContain("2025-01-02T03:04:05.000Z");
  });

  test("lists the config as a table", () => {
    const config = element(html, "table", "config");
    expect(config).toContain("<td>architecture</td><td>mlp 2-64-64-3</td>");
    expect(config).toContain("<td>wasm</td><td>false</td>");
  });

  test("draws loss (train and validation, both runs), accuracy and parameter charts, one path per series", () => {
    const loss = chart(html, "loss");
    expect(occurrences(loss, `<path class="series"`)).toBe(4);
    expect(occurrences(loss, `stroke-dasharray="6 4"`)).toBe(2);
    expect(occurrences(chart(html, "accuracy"), `<path class="series"`)).toBe(2);
    expect(occurrences(chart(html, "params"), `<path class="series"`)).toBe(2);
    for (const id of ["loss", "accuracy"]) expect(chart(html, id)).toContain('class="tick"');
  });

  test("marks germinations, fossilizations and culls on the charts", () => {
    const loss = chart(html, "loss");
    // 3 germinated + 1 fossilized + 1 culled
    expect(occurrences(loss, `<line class="marker"`)).toBe(5);
    expect(loss).toContain("dense1/seed 3 fossilized at epoch 3.50");
    expect(loss).toContain("dense1/seed 11 culled at epoch 2.25");
    expect(occurrences(chart(html, "params"), `<line class="marker"`)).toBe(0);
  });

  test("draws one timeline row per seed, ending in its last state", () => {
    const tl = element(html, "svg", "timeline");
    expect(occurrences(tl, `<g class="seed-row"`)).toBe(3);
    expect(tl).toContain("dense1/seed 3 (lateral_mlp)");
    expect(tl).toContain("dense2/seed 0 (no blueprint)");
    const rows = tl.split(`<g class="seed-row"`).slice(1);
    const lastState = (row: string): string | undefined => [...row.matchAll(/data-state="(\w+)"/g)].pop()?.[1];
    expect(rows.map(lastState)).toEqual(["FOSSILIZED", "CULLED", "TRAINING"]);
    expect(tl).not.toContain('data-state="DORMANT"');
  });

  test("logs one table row per decision with 2-decimal epochs, 4-digit numbers and outcomes", () => {
    const body = element(html, "table", "decisions").split("<tbody>")[1]!;
    expect(occurrences(body, "<tr>")).toBe(fixture.decisions.length);
    expect(body).toContain("<td>0.50</td><td>germinate</td><td>dense1/3</td>");
    expect(body).toContain("plateau=0.001235 patience=3");
    expect(body).toContain("gain=-0.0001235 threshold=0.001");
    expect(body).toContain("delta=123500");
    expect(body).toContain("guard_failed: not stable &lt;yet&gt;");
    expect(body).toContain("<td>dense2/—</td>");
    expect(body).toContain("pending");
  });

  test("tabulates the alerts", () => {
    const alerts = element(html, "table", "alerts").split("<tbody>")[1]!;
    expect(occurrences(alerts, "<tr>")).toBe(1);
    expect(alerts).toContain("gradient_norm");
    expect(alerts).toContain("12.35");
    expect(html).not.toContain("no alerts");
  });

  test("renders a record with no seeds, decisions or alerts and NaN / Infinity values", () => {
    const broken = (e: EpochPoint, i: number): EpochPoint =>
      i === 2 ? { ...e, trainLoss: Number.NaN, valLoss: Number.POSITIVE_INFINITY, testAcc: Number.NaN } : e;
    const empty: DemoRecord = {
      ...fixture,
      host: { ...fixture.host, epochs: fixture.host.epochs.map(broken) },
      grown: { ...fixture.grown, epochs: [] },
      seeds: [],
      decisions: [],
      alerts: [],
      summary: { ...fixture.summary, grownAcc: Number.NaN, deltaPts: Number.NaN, paramsHost: 0 },
    };
    const out = renderReport(empty);
    expect(tagBalance(out)).toBeNull();
    expect(out).toContain("no alerts");
    expect(out).toContain("no seeds germinated");
    expect(out).toContain("no decisions");
    expect(out).not.toMatch(/NaN|Infinity/);
    expect(headerOf(out)).toContain("n/a");
    // The NaN epoch breaks the host's lines in two rather than dropping them to zero.
    const hostTrain = chart(out, "loss").match(/data-series="host train" d="([^"]*)"/)![1]!;
    expect(hostTrain.match(/M/g)).toHaveLength(2);
  });
});
