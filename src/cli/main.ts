/**
 * The `esper` command. Each subcommand lives in its own file; this one only dispatches.
 */
import { UsageError } from "./connection.ts";
import { runDemo } from "./demo.ts";
import { runDlq } from "./dlq.ts";
import { runEvents } from "./events.ts";
import { LAYER_USAGE, runLayer } from "./layer.ts";
import { runMachines } from "./machines.ts";
import { runSend, SEND_USAGE } from "./send.ts";
import { runWorker, WORKER_USAGE } from "./worker.ts";

const USAGE = `esper: runs and steers morphogenetic networks

usage:
  esper demo [--quick] [--epochs N] [--seed N] [--strategy S] [--out FILE.html]
                                     watch a network grow: MNIST, the host alone then under Tamiyo,
                                     in process on the embedded bus; writes an HTML report
  esper machines --out DIR           write seed.json, layer.json, controller.json (Stately Studio imports them)
  ${WORKER_USAGE}
                                     host layers on Redis; prints 'ready', runs until SIGTERM
  ${SEND_USAGE}
                                     send one lifecycle command, print its CommandResult
  esper events --redis URL --layer ID [--telemetry]
                                     tail a layer's events (or telemetry) as JSON lines
  esper dlq list|replay --redis URL [--layer ID] [--id ENTRY]
                                     list dead letters, or replay one onto its stream
  ${LAYER_USAGE}
                                     forget a layer's stored state (after Redis lost its data)

Redis defaults to REDIS_URL, else redis://127.0.0.1:6379; --namespace defaults to ESPER_NAMESPACE, else morphogenetic.

Environment: ESPER_INSPECT=ws://host:port | file:PATH  (Stately inspection, opt-in)`;

export const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  demo: runDemo,
  machines: runMachines,
  worker: runWorker,
  send: runSend,
  events: runEvents,
  dlq: runDlq,
  layer: runLayer,
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
    process.exitCode = error instanceof UsageError ? 2 : 1;
  }
};

await main();
