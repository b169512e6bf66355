/**
 * `esper demo`: watch a network grow. 10,000 real MNIST digits, a deliberately small host, first
 * trained alone and then, from the same weights and batches, under Tamiyo, in process on the
 * embedded bus. Prints progress per epoch, a terminal report, and writes a self-contained HTML
 * report (curves, seed timelines, decision log) whose path it prints.
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import cliProgress from "cli-progress";
import { Command, InvalidArgumentError, Option } from "commander";
import { STRATEGIES, type Strategy } from "../tamiyo/config.ts";
import { UsageError } from "./flags.ts";

interface DemoFlags {
  readonly quick: boolean;
  readonly epochs?: number;
  readonly seed?: number;
  readonly strategy?: Strategy;
  readonly out: string;
  readonly json?: string;
  readonly progress: boolean;
  readonly redis?: string;
  readonly namespace?: string;
  readonly standbys?: number;
  readonly keep: boolean;
}

const integer = (flag: string, min: number) => (text: string): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${flag} must be an integer >= ${min}, got ${text}`);
  return n;
};

export const demoCommand = (done: (code: number) => void): Command =>
  new Command("demo")
    .description(
      "watch a network grow: trains a small MLP on 10,000 MNIST digits twice for the same epochs, the host alone, then the same host under Tamiyo, which germinates seeds where the host struggles, grafts their blueprints in, and fossilizes what helps or culls what hurts; ends with both accuracies and parameter counts, and writes an HTML report",
    )
    .option("--quick", "a short run (a quarter of the data, 12 epochs): for trying it out and for tests", false)
    .option("--epochs <n>", "epochs of each run (default 32; quick 12)", integer("--epochs", 1))
    .option("--seed <n>", "random seed of the data split, weights and batch order (default 1)", integer("--seed", 0))
    .addOption(new Option("--strategy <s>", "Tamiyo's strategy (default aggressive: the host is small enough that growth pays from the start)").choices(STRATEGIES))
    .option("--out <file>", "where to write the HTML report", "esper-demo-report.html")
    .option("--json <file>", "also write the run's record as JSON")
    .option("--no-progress", "no progress bars (epoch lines only)")
    .option("--redis <url>", "run the grown arm across processes on this Redis: each layer owned by an `esper worker`, Tamiyo in an `esper tamiyo`, this process training and following the layers")
    .option("--namespace <ns>", "with --redis: the key namespace (default: a new demo-<time> one)")
    .option("--standbys <n>", "with --redis: extra workers and Tamiyos waiting to take over (default 0)", integer("--standbys", 0))
    .option("--keep", "with --redis: keep the run's keys in Redis afterwards (default: deleted)", false)
    .addHelpText("after", "\nEnvironment: ESPER_BACKEND=wasm|cpu|tensorflow (default wasm)\n\nExamples:\n  npm run demo\n  npm run demo -- --quick --out /tmp/report.html\n  npm run demo -- --redis redis://127.0.0.1:6379 --standbys 1\n  esper demo --strategy balanced --epochs 40")
    .action(async (flags: DemoFlags) => done(await runDemo(flags)));

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

const runDemo = async (args: DemoFlags): Promise<number> => {
  if (args.redis === undefined && (args.namespace !== undefined || args.standbys !== undefined || args.keep)) throw new UsageError("--namespace, --standbys and --keep go with --redis URL");
  if (args.redis !== undefined) (await import("./connection.ts")).checkRedisUrl(args.redis);
  if (args.namespace !== undefined && !(await import("../protocol/streams.ts")).isNamespace(args.namespace)) throw new UsageError(`--namespace ${args.namespace}: use 1 to 32 of [a-z0-9_-]`);
  // Loaded here, not at the top: `esper --help` and the other commands never load tfjs.
  const { runDemoRecord } = await import("../demo/demo-run.ts");
  const { renderReport } = await import("../demo/report-html.ts");
  const tty = args.progress && process.stderr.isTTY === true;
  const bars = tty
    ? new cliProgress.MultiBar(
        { format: " {run} | {bar} | epoch {epoch}/{epochs} | val loss {loss} | test acc {acc} | {seeds}", hideCursor: true, clearOnComplete: false, barsize: 24 },
        cliProgress.Presets.shades_classic,
      )
    : null;
  let bar: cliProgress.SingleBar | null = null;
  const say = (line: string) => (bars ? bars.log(`${line}\n`) : console.log(line));
  const record = await runDemoRecord({
    quick: args.quick,
    ...(args.epochs !== undefined ? { epochs: args.epochs } : {}),
    ...(args.seed !== undefined ? { seed: args.seed } : {}),
    ...(args.strategy ? { strategy: args.strategy } : {}),
    ...(args.redis !== undefined
      ? { redis: { url: args.redis, keep: args.keep, ...(args.namespace !== undefined ? { namespace: args.namespace } : {}), ...(args.standbys !== undefined ? { standbys: args.standbys } : {}) } }
      : {}),
    say,
    progress: {
      onStart: (run, epochs, stepsPerEpoch) => {
        if (!bars) return;
        bar = bars.create(epochs * stepsPerEpoch, 0, { run: run.padEnd(5), epoch: 0, epochs, loss: "-", acc: "-", seeds: "" });
      },
      onStep: (_run, step) => bar?.update(step),
      onEpoch: (run, point, epochs) => {
        const seeds = Object.entries(point.seeds)
          .filter(([state]) => state !== "DORMANT")
          .map(([state, n]) => `${n} ${state.toLowerCase()}`)
          .join(", ");
        bar?.update({ epoch: point.epoch, epochs, loss: point.valLoss.toFixed(3), acc: pct(point.testAcc), seeds: seeds || "all dormant" });
        if (!bars) console.log(`  ${run.padEnd(5)} epoch ${String(point.epoch).padStart(2)}/${epochs}  val loss ${point.valLoss.toFixed(3)}  test acc ${pct(point.testAcc)}  params ${point.params}  seeds: ${seeds || "all dormant"}`);
      },
      onDecision: (d) => say(`  tamiyo @ epoch ${d.epoch.toFixed(2)}: ${d.layerId}${d.seedId === null ? "" : `/seed ${d.seedId}`} ${d.action}: ${d.reason}`),
    },
  });
  bars?.stop();
  const s = record.summary;
  const mattered = record.decisions.filter((d) => d.kind !== "advance" && d.outcome?.success === true);
  console.log("");
  console.log(`esper demo: ${record.config["train"]} training digits, ${record.config["epochs"]} epochs, strategy ${record.config["strategy"]}`);
  console.log(`  host alone       test accuracy ${pct(s.hostAcc)}   parameters ${s.paramsHost}`);
  console.log(`  grown by Tamiyo  test accuracy ${pct(s.grownAcc)}   parameters ${s.paramsGrown} (x${(s.paramsGrown / s.paramsHost).toFixed(2)})`);
  console.log(`  difference       ${s.deltaPts >= 0 ? "+" : ""}${s.deltaPts.toFixed(1)} points`);
  console.log(`  seeds            ${s.germinated} germinated, ${s.fossilized} fossilized, ${s.culled} culled`);
  console.log(`  decisions        ${record.decisions.length} (${record.decisions.filter((d) => d.outcome && !d.outcome.success).length} refused by a layer)`);
  if (mattered.length > 0) console.log("  the decisions that mattered:");
  for (const d of mattered) console.log(`    epoch ${d.epoch.toFixed(2)}  ${d.layerId}${d.seedId === null ? "" : `/seed ${d.seedId}`}  ${d.action}: ${d.reason}`);
  const out = resolve(args.out);
  writeFileSync(out, renderReport(record));
  console.log(`\nreport: ${out}`);
  if (args.json) {
    writeFileSync(resolve(args.json), JSON.stringify(record, null, 2));
    console.log(`record: ${resolve(args.json)}`);
  }
  return 0;
};
