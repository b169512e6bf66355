/**
 * The `esper` command on commander: every command and subcommand answers `--help` (with
 * examples) and the root answers `--version`. Exit codes: 0 done, 1 failed, 2 a usage error
 * (an unknown option, a missing or bad value; said with what to do), 3 a worker whose layer's
 * data Redis lost. Nothing here loads TensorFlow.js: `esper demo` loads it when it runs.
 */
import { createRequire } from "node:module";
import { Command, CommanderError } from "commander";
import { UsageError } from "./flags.ts";
import { demoCommand } from "./demo.ts";
import { dlqCommand } from "./dlq.ts";
import { eventsCommand } from "./events.ts";
import { inspectCommand } from "./inspect.ts";
import { layerCommand } from "./layer.ts";
import { machinesCommand } from "./machines.ts";
import { sendCommand } from "./send.ts";
import { statusCommand } from "./status.ts";
import { tamiyoCommand } from "./tamiyo.ts";
import { workerCommand } from "./worker.ts";

// By the package's own name, so it resolves the same from src/ (a clone) and from dist/ (installed).
const version = (): string => (createRequire(import.meta.url)("esper/package.json") as { version: string }).version;

/** Runs `esper ...argv` in this process and resolves with its exit code. */
export const runCli = async (argv: readonly string[]): Promise<number> => {
  let code = 0;
  const done = (c: number) => void (code = c);
  const program = new Command("esper")
    .description("runs and steers morphogenetic networks: XState lifecycles, Redis Streams, TensorFlow.js")
    .version(version(), "-V, --version")
    .addHelpText(
      "after",
      "\nRedis defaults to REDIS_URL, else redis://127.0.0.1:6379; --namespace to ESPER_NAMESPACE, else morphogenetic.\n" +
        "Environment: ESPER_INSPECT=ws://host:port | file:PATH (Stately inspection, opt-in; esper inspect relays it to a browser)\n\n" +
        "Examples:\n  esper demo --quick\n  esper worker --layer dense1 --seeds 64\n  esper send --layer dense1 --seed 3 --target GERMINATED\n  esper events --layer dense1",
    );
  for (const command of [demoCommand(done), machinesCommand(done), workerCommand(done), tamiyoCommand(done), sendCommand(done), eventsCommand(done), dlqCommand(done), layerCommand(done), statusCommand(done), inspectCommand(done)]) {
    program.addCommand(command);
  }
  // Every command, however deep, exits through here instead of calling process.exit.
  const override = (command: Command): void => {
    command.exitOverride().showHelpAfterError("(add --help for usage and examples)");
    command.commands.forEach(override);
  };
  override(program);
  const name = argv[0] ?? "";
  if (argv.length === 0) {
    // Bare `esper`, what a first-time user types: the usage, as a usage error.
    program.outputHelp();
    return 2;
  }
  try {
    await program.parseAsync([...argv], { from: "user" });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help, --version, or a bare command group: commander printed it. Anything else is a usage error, already said.
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version") return 0;
      return 2;
    }
    if (error instanceof UsageError) {
      console.error(`esper ${name}: ${error.message}\n(add --help for usage and examples)`);
      return 2;
    }
    console.error(`esper ${name}: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
};
