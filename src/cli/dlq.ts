import { Command } from "commander";
import { withConnection, type ConnectionFlags } from "./flags.ts";

export interface DlqFlags extends ConnectionFlags {
  readonly layer?: string;
  readonly id?: string;
  readonly count?: string;
}

/** `esper dlq list` prints dead letters (a layer's, or P.dlq.all); `esper dlq replay --id X` puts one back on its stream. */
export const dlqCommand = (done: (code: number) => void): Command => {
  const dlq = new Command("dlq").description("list dead letters, or replay one onto its original stream");
  dlq.addCommand(
    withConnection(
      new Command("list")
        .description("print dead letters as JSON lines (a layer's, or those of P.control.all and P.coordination)")
        .option("--layer <id>", "the layer whose dead letters to list (default: P.dlq.all)")
        .option("--count <n>", "at most this many", "100"),
    )
      .addHelpText("after", "\nExample:\n  esper dlq list --layer dense1")
      .action(async (flags: DlqFlags) => done(await (await import("./run/dlq.ts")).runDlq("list", flags))),
  );
  dlq.addCommand(
    withConnection(
      new Command("replay")
        .description("append a dead letter's original fields to its original stream")
        .requiredOption("--id <dlq_id>", "the letter, a dlq_id from 'esper dlq list'")
        .option("--layer <id>", "the layer whose dead-letter stream holds it (default: P.dlq.all)"),
    )
      .addHelpText("after", "\nExample:\n  esper dlq replay --layer dense1 --id 1733250000000-0")
      .action(async (flags: DlqFlags) => done(await (await import("./run/dlq.ts")).runDlq("replay", flags))),
  );
  return dlq;
};
