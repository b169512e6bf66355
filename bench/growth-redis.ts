/**
 * growth-redis: the demo's grown arm across processes (`esper demo --redis`: the layers owned by
 * `esper worker` processes, Tamiyo in an `esper tamiyo`, the trainer following them over Redis)
 * against the same arm in process on the embedded bus, for each of three random seeds, one after
 * the other per seed. Both arms see the same split, weights and batches; across processes Tamiyo
 * decides at the trainer's pace (every `decideEvery` steps, counted in ticks) but a few
 * milliseconds late, and the layers take the trainer's reports from a stream, so the runs are
 * not identical. The figure is how far apart they end: `redis_vs_inproc_pts` next to the spread
 * of the in-process arm over seeds (`grown_acc_sd`), the growth benchmark's noise.
 */
import { initBackend } from "../src/kasmina/backend.ts";
import { GROWTH_DEFAULTS, GROWTH_QUICK, runGrown } from "../src/demo/growth.ts";
import { loadDigits } from "../src/demo/mnist.ts";
import { runGrownOnRedis } from "../src/demo/on-redis.ts";
import { round, type Benchmark } from "./harness.ts";

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: readonly number[]) => {
  const m = mean(xs);
  return xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
};

const growthRedis: Benchmark = async ({ quick, log, redisUrl }) => {
  await initBackend();
  const seeds = quick ? [1] : [1, 2, 3];
  const base = quick ? { ...GROWTH_QUICK, epochs: 2 } : GROWTH_DEFAULTS;
  const inproc: number[] = [];
  const remote: number[] = [];
  const counts = { inproc: { fossilized: 0, germinated: 0, culled: 0, params: [] as number[] }, remote: { fossilized: 0, germinated: 0, culled: 0, params: [] as number[] } };
  const seconds = { inproc: 0, remote: 0 };
  for (const seed of seeds) {
    const config = { ...base, seed };
    const data = loadDigits(config.sizes, seed);
    try {
      const a = await runGrown(data, config);
      log(`seed ${seed}: in process  ${(a.run.finalTestAcc * 100).toFixed(2)}% (${a.run.params} params; ${a.germinated} germinated, ${a.fossils.length} fossilized, ${a.culled} culled; ${a.run.seconds.toFixed(0)} s)`);
      const b = await runGrownOnRedis(data, config, { url: redisUrl }, {}, (line) => log(`seed ${seed}: ${line.trim()}`));
      log(`seed ${seed}: on Redis     ${(b.run.finalTestAcc * 100).toFixed(2)}% (${b.run.params} params; ${b.germinated} germinated, ${b.fossils.length} fossilized, ${b.culled} culled; ${b.run.seconds.toFixed(0)} s)`);
      inproc.push(a.run.finalTestAcc * 100);
      remote.push(b.run.finalTestAcc * 100);
      for (const [arm, r] of [["inproc", a], ["remote", b]] as const) {
        counts[arm].fossilized += r.fossils.length;
        counts[arm].germinated += r.germinated;
        counts[arm].culled += r.culled;
        counts[arm].params.push(r.run.params);
        seconds[arm] += r.run.seconds;
      }
    } finally {
      data.dispose();
    }
  }
  return {
    grown_acc: round(mean(inproc), 2),
    grown_redis_acc: round(mean(remote), 2),
    grown_acc_sd: round(sd(inproc), 2),
    grown_redis_acc_sd: round(sd(remote), 2),
    redis_vs_inproc_pts: round(mean(remote) - mean(inproc), 2),
    per_seed_pts: remote.map((r, i) => round(r - inproc[i]!, 2)),
    params_grown: round(mean(counts.inproc.params), 0),
    params_grown_redis: round(mean(counts.remote.params), 0),
    fossilized: counts.inproc.fossilized,
    fossilized_redis: counts.remote.fossilized,
    germinated: counts.inproc.germinated,
    germinated_redis: counts.remote.germinated,
    culled: counts.inproc.culled,
    culled_redis: counts.remote.culled,
    seconds_inproc: round(seconds.inproc, 0),
    seconds_redis: round(seconds.remote, 0),
    seeds,
    epochs: base.epochs,
  };
};

export default growthRedis;
