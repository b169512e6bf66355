import { Command } from "commander";
import { withConnection, type ConnectionFlags } from "./flags.ts";

export interface StatusFlags extends ConnectionFlags {
  readonly layer?: string;
  readonly json: boolean;
}

/** `esper status`: live services, layer owners, lag, pending and dead letters, from Redis. */
export const statusCommand = (done: (code: number) => void): Command =>
  withConnection(
    new Command("status")
      .description("show the services that announced themselves (flagging those that stopped beating), and for each layer its owner, lag, pending entries and dead letters; exit 1 when a service stopped beating or a layer has no owner")
      .option("--layer <ids>", "layers to report, comma-separated (default: those the live services host)")
      .option("--json", "print the status as JSON", false),
  )
    .addHelpText("after", "\nExamples:\n  esper status\n  esper status --layer dense1,dense2 --json | jq .layers")
    .action(async (flags: StatusFlags) => done(await (await import("./run/status.ts")).runStatus(flags)));
