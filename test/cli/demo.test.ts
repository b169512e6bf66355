/**
 * `esper demo`: the control plane end to end in process, honest validators, printed as it goes.
 */
import { afterEach, describe, expect, test, vi } from "vitest";
import { runDemo } from "../../src/cli/demo.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

const runCaptured = async (): Promise<{ code: number; lines: string[] }> => {
  const log = vi.spyOn(console, "log").mockImplementation(() => {});
  const code = await runDemo([]);
  return { code, lines: log.mock.calls.map((c) => c.map(String).join(" ")) };
};

describe("esper demo", () => {
  test("walks seeds to FOSSILIZED, culls one, refuses what the lifecycle forbids, and exits 0", async () => {
    const { code, lines } = await runCaptured();
    expect(code).toBe(0);
    const transitions = lines.filter((l) => /->/.test(l) && !l.includes("REFUSED"));
    const fossilized = transitions.filter((l) => /FINE_TUNING\s+-> FOSSILIZED/.test(l));
    expect(fossilized.map((l) => l.match(/(dense\d)\/seed\s+(\d+)/)!.slice(1, 3).join("/"))).toEqual(["dense1/3", "dense1/7"]);
    const culled = transitions.filter((l) => /-> CULLED/.test(l));
    expect(culled).toHaveLength(1);
    expect(culled[0]).toMatch(/dense1\/seed 11\s+EVALUATING\s+-> CULLED/);
    const refused = lines.filter((l) => l.includes("REFUSED"));
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused.some((l) => /REFUSED invalid_transition: DORMANT -> FOSSILIZED/.test(l))).toBe(true);
    expect(refused.some((l) => /REFUSED guard_failed: TRAINING -> GRAFTING/.test(l))).toBe(true);
    expect(refused.some((l) => /REFUSED emergency_stopped/.test(l))).toBe(true);
  });

  test("ends with a summary that counts each state and the refusals", async () => {
    const { lines } = await runCaptured();
    const summary = lines.find((l) => l.startsWith("summary:"));
    expect(summary).toBe("summary: 28 DORMANT, 2 FOSSILIZED, 1 CULLED, 1 CANCELLED; 3 commands refused");
  });

  test("the emergency stop in dense2 cancels its training seed", async () => {
    const { lines } = await runCaptured();
    expect(lines.some((l) => /dense2\/seed\s+5\s+TRAINING\s+-> CANCELLED\s+\(emergency stop: operator stop\)/.test(l))).toBe(true);
    expect(lines).toContain("  dense2 emergency stop: ok; growth refused until resumed");
  });
});
