/**
 * `npm run bench [-- NAME ...] [--quick]`: runs the named benchmarks (all when none is named),
 * each printing progress on stderr and one JSON line on stdout.
 */
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Benchmark } from "./harness.ts";

const here = dirname(fileURLToPath(import.meta.url));
const NOT_BENCHMARKS = new Set(["run", "harness"]);

export const availableBenchmarks = (): string[] =>
  readdirSync(here)
    .filter((f) => f.endsWith(".ts") && !NOT_BENCHMARKS.has(f.slice(0, -3)))
    .map((f) => f.slice(0, -3))
    .sort();

export const runBenchmark = async (name: string, quick: boolean): Promise<Record<string, unknown>> => {
  const mod = (await import(join(here, `${name}.ts`))) as { default: Benchmark };
  const figures = await mod.default({
    quick,
    log: (message) => process.stderr.write(`[${name}] ${message}\n`),
    redisUrl: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
  });
  return { bench: name, ...figures, quick };
};

const main = async (): Promise<void> => {
  const args = process.argv.slice(2);
  const quick = args.includes("--quick");
  const names = args.filter((a) => !a.startsWith("--"));
  const available = availableBenchmarks();
  const unknown = names.filter((n) => !available.includes(n));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark ${unknown.join(", ")}; available: ${available.join(", ")}\n`);
    process.exit(2);
  }
  for (const name of names.length > 0 ? names : available) {
    const line = await runBenchmark(name, quick);
    process.stdout.write(`${JSON.stringify(line)}\n`);
  }
  process.exit(0);
};

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}
