/**
 * Usage errors of the esper command exit 2 and say what to do, before anything connects
 * (regression: `esper dlq replay` without --id exited 1 from inside the program).
 */
import { describe, expect, test } from "vitest";
import { esper } from "../support/esper-cli.ts";

describe("esper usage errors", () => {
  test("dlq replay without --id exits 2 and names the option and where ids come from", async () => {
    const run = await esper(["dlq", "replay", "--redis", "redis://127.0.0.1:1"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/replay needs --id \(a dlq_id from 'esper dlq list'\)/);
  });

  test("dlq list with a --count that is not a positive integer exits 2", async () => {
    const run = await esper(["dlq", "list", "--count", "x", "--redis", "redis://127.0.0.1:1"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--count must be a positive integer, got x/);
  });

  test("demo --help prints its usage and exits 0 without training anything", async () => {
    const run = await esper(["demo", "--help"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/usage: esper demo \[--quick\]/);
    expect(run.stdout).not.toMatch(/training the host/);
  });
});
