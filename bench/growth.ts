/**
 * growth: the demo's learning result (src/demo/growth.ts), three arms on the same data, initial
 * weights, batches and epochs, for each of three random seeds:
 *   host    the host alone;
 *   grown   the host grown by Tamiyo, in process on the embedded bus;
 *   static  the grown network's final architecture (the host with the blueprints blended in at
 *           the end of that seed's grown run, in place from the first step) trained from
 *           scratch: what growth must match to be worth its trouble.
 * Accuracies are test-set fractions of the last epoch; means and standard deviations over the
 * seeds. The arms run one after another per seed (A B C A B C ...), so machine noise touches
 * each alike; accuracy does not depend on speed anyway.
 */
import { initBackend } from "../src/kasmina/backend.ts";
import { GROWTH_DEFAULTS, GROWTH_QUICK, runGrown, runHost, runStatic } from "../src/demo/growth.ts";
import { loadDigits } from "../src/demo/mnist.ts";
import { round, type Benchmark } from "./harness.ts";

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: readonly number[]) => {
  const m = mean(xs);
  return xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
};

const growth: Benchmark = async ({ quick, log }) => {
  await initBackend();
  const seeds = quick ? [1] : [1, 2, 3];
  const base = quick ? { ...GROWTH_QUICK, epochs: 4 } : GROWTH_DEFAULTS;
  const host: number[] = [];
  const grown: number[] = [];
  const stat: number[] = [];
  const paramsGrown: number[] = [];
  const paramsStatic: number[] = [];
  let paramsHost = 0;
  let fossilized = 0;
  let culled = 0;
  let germinated = 0;
  const started = performance.now();
  for (const seed of seeds) {
    const config = { ...base, seed };
    const data = loadDigits(config.sizes, seed);
    try {
      const h = await runHost(data, config);
      log(`seed ${seed}: host ${(h.finalTestAcc * 100).toFixed(2)}% (${h.params} params, ${h.seconds.toFixed(0)} s)`);
      const g = await runGrown(data, config);
      log(`seed ${seed}: grown ${(g.run.finalTestAcc * 100).toFixed(2)}% (${g.run.params} params; ${g.germinated} germinated, ${g.fossils.length} fossilized, ${g.culled} culled; ${g.run.seconds.toFixed(0)} s)`);
      const s = await runStatic(data, config, g.architecture);
      log(`seed ${seed}: static ${(s.finalTestAcc * 100).toFixed(2)}% (${s.params} params, ${s.seconds.toFixed(0)} s)`);
      host.push(h.finalTestAcc * 100);
      grown.push(g.run.finalTestAcc * 100);
      stat.push(s.finalTestAcc * 100);
      paramsHost = h.params;
      paramsGrown.push(g.run.params);
      paramsStatic.push(s.params);
      fossilized += g.fossils.length;
      culled += g.culled;
      germinated += g.germinated;
    } finally {
      data.dispose();
    }
  }
  const pg = mean(paramsGrown);
  return {
    host_acc: round(mean(host), 2),
    grown_acc: round(mean(grown), 2),
    static_acc: round(mean(stat), 2),
    host_acc_sd: round(sd(host), 2),
    grown_acc_sd: round(sd(grown), 2),
    static_acc_sd: round(sd(stat), 2),
    delta_pts: round(mean(grown) - mean(host), 2),
    grown_vs_static_pts: round(mean(grown) - mean(stat), 2),
    params_host: paramsHost,
    params_grown: round(pg, 0),
    params_static: round(mean(paramsStatic), 0),
    params_ratio: round(pg / paramsHost, 3),
    germinated,
    fossilized,
    culled,
    seeds,
    epochs: base.epochs,
    strategy: base.strategy,
    seconds: round((performance.now() - started) / 1000, 0),
  };
};

export default growth;
