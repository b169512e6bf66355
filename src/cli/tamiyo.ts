import { Command } from "commander";
import { withConnection, type ConnectionFlags } from "./flags.ts";

export interface TamiyoFlags extends ConnectionFlags {
  readonly layer?: string;
  readonly seeds?: string;
  readonly hostParams: string;
  readonly blueprint: string;
  readonly profile?: string;
  readonly strategy?: string;
  readonly decideEveryMs: string;
  readonly decideEveryTicks?: string;
  readonly name?: string;
}

/** `esper tamiyo`: Tamiyo as a process of her own on Redis; one of any number leads (a lease), the others stand by. */
export const tamiyoCommand = (done: (code: number) => void): Command =>
  withConnection(
    new Command("tamiyo")
      .description(
        "run Tamiyo on Redis: she reads the layers' telemetry and events and steers their seeds; of several started, one leads (a lease with a fencing token) and the others stand by to take over; prints 'ready' once leading or standing by, each decision as a JSON line and each answer as another ({command, outcome}), runs until SIGTERM",
      )
      .option("--layer <ids>", "the layers to steer, comma-separated (with --seeds); or give --profile")
      .option("--seeds <n>", "seeds of each layer")
      .option("--host-params <n>", "parameters of each layer's host part (the growth budget is a share of it)", "10000")
      .option("--blueprint <kind=params,...>", "blueprint kinds she may germinate and what one seed of each costs", "residual_mlp=512")
      .option("--profile <file>", "a JSON file with the layers' profiles: [{ layerId, numSeeds, hostParams, blueprints: [{ id, params }], guards? }]")
      .option("--strategy <s>", "conservative, balanced, aggressive or adaptive (default balanced)")
      .option("--decide-every-ms <ms>", "how often she decides", "1000")
      .option("--decide-every-ticks <n>", "decide at the trainer's pace instead: whenever every layer has reported n more ticks (epochs) in its telemetry")
      .option("--name <name>", "her name among her peers (default: host-pid)"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  esper tamiyo --layer dense1,dense2 --seeds 16\n  esper tamiyo --profile layers.json --strategy aggressive   # start two: one leads, one stands by",
    )
    .action(async (flags: TamiyoFlags) => done(await (await import("./run/tamiyo.ts")).runTamiyo(flags)));
