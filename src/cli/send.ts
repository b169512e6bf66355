import { Command } from "commander";
import { withConnection, type ConnectionFlags } from "./flags.ts";

export interface SendFlags extends ConnectionFlags {
  readonly layer: string;
  readonly seed: string;
  readonly target: string;
  readonly force: boolean;
  readonly reason: string;
  readonly timeoutMs: string;
}

/** `esper send`: one LifecycleTransitionCommand; prints its CommandResult as JSON; exit 0 when it succeeded. */
export const sendCommand = (done: (code: number) => void): Command =>
  withConnection(
    new Command("send")
      .description("send one lifecycle command to a layer and print its CommandResult (exit 0 when it succeeded)")
      .requiredOption("--layer <id>", "the layer")
      .requiredOption("--seed <n|all>", "a seed number, or all (every seed of the layer)")
      .requiredOption("--target <state>", "the lifecycle state to move to (DORMANT, GERMINATED, TRAINING, ...)")
      .option("--force", "skip the validators (never the graph's edges)", false)
      .option("--reason <text>", "why, recorded with the transition", "")
      .option("--timeout-ms <ms>", "how long the command may wait to be applied", "5000"),
  )
    .addHelpText("after", "\nExamples:\n  esper send --layer dense1 --seed 3 --target GERMINATED\n  esper send --redis redis://10.0.0.5:6379 --layer dense1 --seed all --target CANCELLED --reason 'operator'")
    .action(async (flags: SendFlags) => done(await (await import("./run/send.ts")).runSend(flags)));
