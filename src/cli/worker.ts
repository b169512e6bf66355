import { Command, Option } from "commander";
import { withConnection, type ConnectionFlags } from "./flags.ts";

export interface WorkerFlags extends ConnectionFlags {
  readonly layer: string;
  readonly seeds: string;
  readonly consumer?: string;
  readonly ordering: "partition" | "causal";
}

export const workerCommand = (done: (code: number) => void): Command =>
  withConnection(
    new Command("worker")
      .description("host layers on Redis: serves each layer while it holds the layer's lease, waits as a standby otherwise; prints 'ready' once every layer is served or waited for, runs until SIGTERM; exit 3 when Redis lost a layer's data")
      .requiredOption("--layer <ids>", "the layers to host, comma-separated")
      .requiredOption("--seeds <n>", "seeds of each layer")
      .option("--consumer <name>", "consumer name in group kasmina (default: host-pid)")
      .addOption(new Option("--ordering <o>", "partition: each layer in its stream's order; causal: also waits for a command's metadata.depends_on").choices(["partition", "causal"]).default("partition")),
  )
    .addHelpText("after", "\nExamples:\n  esper worker --layer dense1 --seeds 64\n  ESPER_INSPECT=ws://127.0.0.1:8080 esper worker --redis redis://10.0.0.5:6379 --layer dense1,dense2 --seeds 256")
    .action(async (flags: WorkerFlags) => done(await (await import("./run/worker.ts")).runWorker(flags)));
