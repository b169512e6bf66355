/**
 * The `esper` command. Each subcommand lives in its own file; this one only dispatches.
 */
import { runDemo } from "./demo.ts";
import { runMachines } from "./machines.ts";

const USAGE = `esper: runs and steers morphogenetic networks

usage:
  esper demo                         run the lifecycle demo in process on the embedded bus
  esper machines --out DIR           write seed.json, layer.json, controller.json (Stately Studio imports them)

Environment: ESPER_INSPECT=ws://host:port | file:PATH  (Stately inspection, opt-in)`;

export const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  demo: runDemo,
  machines: runMachines,
};

const main = async (): Promise<void> => {
  const [name, ...args] = process.argv.slice(2);
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    console.log(USAGE);
    process.exit(name === undefined ? 2 : 0);
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`esper: unknown command '${name}'\n\n${USAGE}`);
    process.exit(2);
  }
  try {
    process.exitCode = await command(args);
  } catch (error) {
    console.error(`esper ${name}: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  }
};

await main();
