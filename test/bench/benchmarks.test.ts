import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { connectOrFail } from "../support/redis.ts";

/**
 * Every benchmark of docs/benchmarks.md still runs: a smoke run (--quick) of each, in one process as
 * `npm run bench -- NAMES --quick` would, checked for the shape of its JSON line (its name, and
 * every field docs/benchmarks.md requires present as a finite number). Never its speed.
 */

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

const REQUIRED: Readonly<Record<string, readonly string[]>> = {
  "inproc-throughput": ["commands_per_s", "xstate_sends_per_s", "ratio", "commands_per_s_no_fast", "fast_ratio"],
  "command-rtt": ["p50_ms", "p99_ms", "p999_ms", "steady_p99_ms", "raw_p99_ms", "ratio_p99"],
  "telemetry-throughput": ["records_per_s", "entries_per_s", "raw_records_per_s", "ratio", "records_per_s_no_fast", "fast_ratio", "naive_records_per_s", "bullmq_jobs_per_s"],
  "pending-memory": ["bytes_per_pending", "total_mb"],
  "layer-overhead": ["dormant_overhead_pct", "active25_overhead_pct", "dense_ms", "kasmina_ms"],
  growth: ["host_acc", "grown_acc", "static_acc", "host_acc_sd", "grown_acc_sd", "static_acc_sd", "delta_pts", "params_host", "params_grown", "fossilized", "culled"],
  "growth-redis": ["grown_acc", "grown_redis_acc", "grown_acc_sd", "redis_vs_inproc_pts", "params_grown", "params_grown_redis", "fossilized_redis", "culled_redis"],
};
// layer-overhead is written by another hand; it is checked whenever it is there.
const NAMES = Object.keys(REQUIRED).filter((name) => existsSync(join(REPO, "bench", `${name}.ts`)));

interface Run {
  readonly code: number | null;
  readonly lines: Record<string, unknown>[];
  readonly stderr: string;
}

const runQuick = (names: readonly string[]): Promise<Run> =>
  new Promise((resolve) => {
    // Its own process group, so that a run past its time is killed with the workers it started.
    const child = spawn(process.execPath, ["--import", "tsx", "bench/run.ts", ...names, "--quick"], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 110_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      const lines = stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code, lines, stderr });
    });
  });

let run: Run;
beforeAll(async () => {
  // Without Redis the benchmarks cannot run: fail saying how to start it, never skip.
  await (await connectOrFail()).quit();
  run = await runQuick(NAMES);
}, 120_000);

describe("benchmarks, --quick", () => {
  it("all run and exit 0, one JSON line each, last on stdout", () => {
    expect(run.code, run.stderr.slice(-4_000)).toBe(0);
    expect(run.lines.map((l) => l.bench)).toEqual(NAMES);
  });

  it.each(NAMES)("%s prints every field docs/benchmarks.md names, as finite numbers", (name) => {
    const line = run.lines.find((l) => l.bench === name);
    expect(line, `no JSON line for ${name}; stderr:\n${run.stderr.slice(-4_000)}`).toBeDefined();
    expect(line!.quick).toBe(true);
    for (const field of REQUIRED[name]!) {
      expect(typeof line![field], `${name}.${field} = ${JSON.stringify(line![field])}`).toBe("number");
      expect(Number.isFinite(line![field] as number), `${name}.${field} = ${line![field]}`).toBe(true);
    }
  });

  it("growth names the random seeds it ran", () => {
    const line = run.lines.find((l) => l.bench === "growth");
    expect(line?.seeds).toEqual([1]);
  });
});
