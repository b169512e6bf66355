import { Command, InvalidArgumentError } from "commander";

export interface InspectFlags {
  readonly port: number;
  readonly host: string;
}

const port = (text: string): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError(`--port must be a port number (0 to 65535; 0 picks a free one), got ${text}`);
  return n;
};

/** `esper inspect`: the relay between inspected processes and Stately's inspector in a browser, until Ctrl-C. */
export const inspectCommand = (done: (code: number) => void): Command =>
  new Command("inspect")
    .description(
      "relay inspection events from esper processes (ESPER_INSPECT=ws://...) to Stately's inspector in a browser; a browser opened late still sees every actor",
    )
    .option("--port <n>", "port of the relay and its page (0: a free one)", port, 8080)
    .option("--host <address>", "interface to listen on", "127.0.0.1")
    .addHelpText("after", "\nExamples:\n  esper inspect                       # then open the printed page, and run:\n  ESPER_INSPECT=ws://127.0.0.1:8080 npm run demo -- --quick\n  esper inspect --port 9000")
    .action(async (flags: InspectFlags) => done(await (await import("./run/inspect.ts")).runInspect(flags)));
