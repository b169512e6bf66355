/**
 * `esper demo`: watch a network grow. 10,000 real MNIST digits, a deliberately small host, first
 * trained alone and then, from the same weights and batches, under Tamiyo, in process on the
 * embedded bus. Prints progress per epoch, a terminal report, and writes a self-contained HTML
 * report (curves, seed timelines, decision log) whose path it prints.
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import cliProgress from "cli-progress";
import { UsageError } from "./connection.ts";
import { STRATEGIES, type Strategy } from "../tamiyo/config.ts";

export const DEMO_USAGE = "esper demo [--quick] [--epochs N] [--seed N] [--strategy conservative|balanced|aggressive|adaptive] [--out FILE.html] [--json FILE]";

const HELP = `usage: ${DEMO_USAGE}

Trains a small MLP on 10,000 MNIST digits twice for the same epochs: the host alone, then the same
host under Tamiyo, which germinates seeds where the host struggles, grafts their blueprints in,
and fossilizes what helps or culls what hurts. Ends with both accuracies and parameter counts, and
writes an HTML report (default ./esper-demo-report.html).

  --quick        a short run (a quarter of the data, 12 epochs): for trying it out and for tests
  --epochs N     epochs of each run (default 32; quick 12)
  --seed N       random seed of the data split, weights and batch order (default 1)
  --strategy S   Tamiyo's strategy (default aggressive: the host is small enough that growth pays from the start)
  --out FILE     where to write the HTML report
  --json FILE    also write the run's record as JSON
  --no-progress  no progress bars (epoch lines only)

Environment: ESPER_BACKEND=wasm|cpu|tensorflow (default wasm)`;

interface DemoArgs {
  readonly quick: boolean;
  readonly epochs?: number;
  readonly seed?: number;
  readonly strategy?: Strategy;
  readonly out: string;
  readonly json?: string;
  readonly progress: boolean;
  readonly help: boolean;
}

export const parseDemoArgs = (args: readonly string[]): DemoArgs => {
  let quick = false;
  let progress = true;
  let help = false;
  let epochs: number | undefined;
  let seed: number | undefined;
  let strategy: Strategy | undefined;
  let out = "esper-demo-report.html";
  let json: string | undefined;
  const value = (i: number, flag: string): string => {
    const v = args[i + 1];
    if (v === undefined || v.startsWith("--")) throw new UsageError(`esper demo: ${flag} needs a value\n${DEMO_USAGE}`);
    return v;
  };
  const integer = (text: string, flag: string, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`esper demo: ${flag} must be an integer >= ${min}, got ${text}`);
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    switch (arg) {
      case "--quick":
        quick = true;
        break;
      case "--no-progress":
        progress = false;
        break;
      case "--help":
      case "-h":
        help = true;
        break;
      case "--epochs":
        epochs = integer(value(i++, arg), arg, 1);
        break;
      case "--seed":
        seed = integer(value(i++, arg), arg, 0);
        break;
      case "--strategy": {
        const s = value(i++, arg);
        if (!(STRATEGIES as readonly string[]).includes(s)) throw new UsageError(`esper demo: --strategy must be one of ${STRATEGIES.join(", ")}, got ${s}`);
        strategy = s as Strategy;
        break;
      }
      case "--out":
        out = value(i++, arg);
        break;
      case "--json":
        json = value(i++, arg);
        break;
      default:
        throw new UsageError(`esper demo: unknown option ${arg}\n${DEMO_USAGE}`);
    }
  }
  return { quick, progress, help, out, ...(epochs !== undefined ? { epochs } : {}), ...(seed !== undefined ? { seed } : {}), ...(strategy ? { strategy } : {}), ...(json ? { json } : {}) };
};

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

export const runDemo = async (argv: string[]): Promise<number> => {
  const args = parseDemoArgs(argv);
  if (args.help) {
    console.log(HELP);
    return 0;
  }
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
