/**
 * pending-memory: 10,000 commands pending for a stopped worker, held by the consumer side.
 *
 * What is measured, per arm, in a fresh process (bench/lib/pending-probe.ts, node --expose-gc):
 * the layer's worker is stopped (its group `kasmina` exists on the control stream, nobody reads
 * it); the sender sends 10,000 LifecycleTransitionCommands and keeps every one waiting for its
 * CommandResult (timeout 10 min). Once Redis holds all of them:
 *   - client heap: heapUsed + external after full GCs, minus the same before the sends (after a
 *     warm-up command), so the code, connections and followers are not counted, only what each
 *     pending command costs: its waiter, timer and promise, and whatever the bus keeps;
 *   - redis: MEMORY USAGE (exact, SAMPLES 0) of the control stream holding the 10,000 entries.
 *   bytes_per_pending = (client heap + redis) / 10,000; total_mb = the two, in MiB.
 * Arms: esper (src/client/client.ts on a RedisBus) and raw (bare ioredis XADD of the same
 * bytes, a waiter per command in a Map with its timer); alternated, medians reported.
 */
import { median, round, type Benchmark } from "./harness.ts";
import { startChild } from "./lib/child.ts";
import { benchNamespace, connectAdmin, deleteKeys } from "./lib/redis.ts";

interface Probe {
  readonly count: number;
  readonly pending: number;
  readonly heap_bytes: number;
  readonly redis_bytes: number;
}

const probe = async (mode: "esper" | "raw", redisUrl: string, namespace: string, layer: string, count: number): Promise<Probe> => {
  const child = startChild("bench/lib/pending-probe.ts", [mode, redisUrl, namespace, layer, String(count)], { nodeArgs: ["--expose-gc"] });
  try {
    const line = await child.waitFor((l) => l.startsWith("{"), 120_000);
    const result = JSON.parse(line) as Probe;
    if (result.pending !== count) throw new Error(`${mode}: ${result.pending} pending, expected ${count}`);
    return result;
  } finally {
    await child.kill();
  }
};

const MiB = 1024 * 1024;

const pendingMemory: Benchmark = async ({ quick, log, redisUrl }) => {
  const [count, rounds] = quick ? [2_000, 1] : [10_000, 3];
  const namespace = benchNamespace("pending");
  const admin = await connectAdmin(redisUrl);
  const arms = { esper: [] as Probe[], raw: [] as Probe[] };
  try {
    for (let r = 1; r <= rounds; r++) {
      // Each probe is its own process and its own layer, so in a smoke run the two may overlap.
      const modes = ["esper", "raw"] as const;
      const run = (mode: (typeof modes)[number]) => probe(mode, redisUrl, namespace, `${mode}${r}`, count);
      const probes = quick ? await Promise.all(modes.map(run)) : [await run("esper"), await run("raw")];
      probes.forEach((p, i) => {
        const mode = modes[i]!;
        arms[mode].push(p);
        log(`round ${r} ${mode}: client heap ${round(p.heap_bytes / count, 1)} B/pending, redis ${round(p.redis_bytes / count, 1)} B/pending`);
      });
    }
  } finally {
    await deleteKeys(admin, `${namespace}.`);
    admin.disconnect();
  }
  const per = (probes: readonly Probe[], f: (p: Probe) => number) => median(probes.map((p) => f(p) / p.count));
  const esperBytes = per(arms.esper, (p) => p.heap_bytes + p.redis_bytes);
  const rawBytes = per(arms.raw, (p) => p.heap_bytes + p.redis_bytes);
  return {
    pending: count,
    rounds,
    bytes_per_pending: Math.round(esperBytes),
    // For 10,000 pending (what was measured, scaled only in --quick).
    total_mb: round((esperBytes * 10_000) / MiB, 2),
    client_bytes_per_pending: Math.round(per(arms.esper, (p) => p.heap_bytes)),
    redis_bytes_per_pending: Math.round(per(arms.esper, (p) => p.redis_bytes)),
    raw_bytes_per_pending: Math.round(rawBytes),
    raw_client_bytes_per_pending: Math.round(per(arms.raw, (p) => p.heap_bytes)),
    raw_total_mb: round((rawBytes * 10_000) / MiB, 2),
    ratio: round(esperBytes / rawBytes, 3),
  };
};

export default pendingMemory;
