/**
 * `esper demo --quick` end to end, in process: the host alone, then the host under Tamiyo on the
 * embedded bus. Accuracy is the growth benchmark's business; here: the lifecycle moved in order,
 * every decision was logged and answered, and the report is a well-formed, self-contained page.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { EDGES, type SeedState } from "../../machines/lifecycle.ts";
import { runCli } from "../../src/cli/program.ts";
import type { DemoRecord } from "../../src/demo/record.ts";

const dir = mkdtempSync(join(tmpdir(), "esper-demo-"));
const html = join(dir, "report.html");
const json = join(dir, "record.json");
let code = -1;
let lines: string[] = [];
let record: DemoRecord;
let page = "";

beforeAll(async () => {
  const log = vi.spyOn(console, "log").mockImplementation(() => {});
  try {
    code = await runCli(["demo", "--quick", "--no-progress", "--out", html, "--json", json]);
    lines = log.mock.calls.map((c) => c.map(String).join(" "));
  } finally {
    log.mockRestore();
  }
  record = JSON.parse(readFileSync(json, "utf8")) as DemoRecord;
  page = readFileSync(html, "utf8");
}, 240_000);

afterAll(() => vi.restoreAllMocks());

describe("esper demo --quick", () => {
  it("exits 0 and ends with the terminal report: both accuracies, parameters, seeds, and the report's path", () => {
    expect(code).toBe(0);
    const text = lines.join("\n");
    expect(text).toMatch(/host alone\s+test accuracy \d+\.\d%\s+parameters 12786/);
    expect(text).toMatch(/grown by Tamiyo\s+test accuracy \d+\.\d%\s+parameters \d+ \(x1\.\d\d\)/);
    expect(text).toMatch(/seeds\s+\d+ germinated, \d+ fossilized, \d+ culled/);
    expect(text).toContain(`report: ${html}`);
  });

  it("trained both runs for the same epochs, the host's seeds dormant throughout", () => {
    expect(record.host.epochs).toHaveLength(record.grown.epochs.length);
    expect(record.host.epochs.every((e) => Object.keys(e.seeds).join() === "DORMANT")).toBe(true);
    expect(record.summary.paramsHost).toBe(12786);
    expect(record.summary.paramsGrown).toBeGreaterThan(record.summary.paramsHost);
    expect(record.summary.paramsGrown).toBeLessThanOrEqual(record.summary.paramsHost * 1.25);
  });

  it("moved every seed along edges of the lifecycle, in order, from DORMANT; at least one all the way to FOSSILIZED", () => {
    expect(record.seeds.length).toBeGreaterThan(0);
    for (const seed of record.seeds) {
      let from: SeedState = "DORMANT";
      let at = 0;
      for (const step of seed.steps) {
        expect(EDGES[from], `${seed.layerId}/${seed.seedId}: ${from} -> ${step.state}`).toContain(step.state);
        expect(step.epoch).toBeGreaterThanOrEqual(at);
        from = step.state;
        at = step.epoch;
      }
    }
    const path = ["GERMINATED", "TRAINING", "GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING", "FOSSILIZED"];
    expect(record.seeds.some((s) => s.steps.map((x) => x.state).join() === path.join())).toBe(true);
    expect(record.summary.fossilized).toBeGreaterThanOrEqual(1);
  });

  it("logged every decision with its reason and numbers, and the layer's answer to it", () => {
    expect(record.decisions.length).toBeGreaterThan(0);
    for (const d of record.decisions) {
      expect(d.reason.length).toBeGreaterThan(0);
      expect(Object.keys(d.numbers).length).toBeGreaterThan(0);
      expect(d.outcome, `${d.layerId}/${d.seedId} ${d.action}`).toBeDefined();
    }
    // Every transition a seed made was one Tamiyo decided and the layer accepted.
    for (const seed of record.seeds) {
      for (const step of seed.steps) {
        const decided = record.decisions.some((d) => d.layerId === seed.layerId && d.seedId === seed.seedId && d.outcome?.success && (d.action.endsWith(`-> ${step.state}`) || (step.state === "GERMINATED" && d.kind === "germinate")));
        expect(decided, `${seed.layerId}/${seed.seedId} -> ${step.state}`).toBe(true);
      }
    }
  });

  it("wrote a well-formed, self-contained HTML report of it", () => {
    expect(page.slice(0, 15).toLowerCase()).toBe("<!doctype html>");
    expect(page.trimEnd().endsWith("</html>")).toBe(true);
    expect(page).not.toMatch(/(src|href)\s*=|url\(|@import|https?:\/\//i);
    const opened = (tag: string) => (page.match(new RegExp(`<${tag}[\\s>]`, "g")) ?? []).length;
    const closed = (tag: string) => (page.match(new RegExp(`</${tag}>`, "g")) ?? []).length;
    for (const tag of ["html", "body", "table", "svg", "section"]) expect(closed(tag), tag).toBe(opened(tag));
    expect(opened("svg")).toBeGreaterThanOrEqual(2);
    for (const seed of record.seeds) expect(page).toContain(`${seed.layerId}/seed ${seed.seedId}`);
  });
});

describe("esper demo arguments", () => {
  it("refuses what it does not know, naming it, with exit 2 and nothing trained", async () => {
    const error = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    try {
      expect(await runCli(["demo", "--epochs", "0"])).toBe(2);
      expect(await runCli(["demo", "--strategy", "reckless"])).toBe(2);
      expect(await runCli(["demo", "--bogus"])).toBe(2);
      const said = error.mock.calls.map((c) => String(c[0])).join("");
      expect(said).toMatch(/--epochs must be an integer >= 1, got 0/);
      expect(said).toMatch(/Allowed choices are conservative, balanced, aggressive, adaptive/);
      expect(said).toMatch(/unknown option '--bogus'/);
      expect(log).not.toHaveBeenCalled();
    } finally {
      error.mockRestore();
      log.mockRestore();
    }
  });
});
