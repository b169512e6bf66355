import { Command } from "commander";
import { withConnection, type ConnectionFlags } from "./flags.ts";

export interface ResetFlags extends ConnectionFlags {
  readonly layer: string;
  readonly yes: boolean;
}

/**
 * `esper layer reset`: forgets what the store holds of a layer (its seeds' snapshots, its record
 * and generation marker, its dedupe table), so its next worker starts it over with every seed
 * DORMANT. The way out after Redis lost a layer's data and no backup is to be had
 * (docs/operations.md). Its streams stay: queued commands, events and dead letters are kept.
 * Without --yes it only says what it would delete.
 */
export const layerCommand = (done: (code: number) => void): Command =>
  new Command("layer").description("manage a layer's stored state").addCommand(
    withConnection(
      new Command("reset")
        .description("forget a layer's stored state (after Redis lost its data): its next worker starts it over, every seed DORMANT; streams are kept")
        .requiredOption("--layer <id>", "the layer")
        .option("--yes", "delete; without it, only say what would be deleted", false),
    )
      .addHelpText("after", "\nExamples:\n  esper layer reset --layer dense1          # says what it would delete\n  esper layer reset --layer dense1 --yes    # after stopping the layer's worker")
      .action(async (flags: ResetFlags) => done(await (await import("./run/layer.ts")).runReset(flags))),
  );
