import { Command } from "commander";
import { withConnection, type ConnectionFlags } from "./flags.ts";

export interface EventsFlags extends ConnectionFlags {
  readonly layer: string;
  readonly telemetry: boolean;
}

/** `esper events --layer ID [--telemetry]`: tails a layer's events (or telemetry), one JSON line each, until SIGINT. */
export const eventsCommand = (done: (code: number) => void): Command =>
  withConnection(
    new Command("events")
      .description("follow a layer's events (or its telemetry) as JSON lines, until Ctrl-C; what cannot be read is said on stderr")
      .requiredOption("--layer <id>", "the layer")
      .option("--telemetry", "follow the telemetry stream instead of the event stream", false),
  )
    .addHelpText("after", "\nExamples:\n  esper events --layer dense1\n  esper events --layer dense1 --telemetry | jq .health_metrics")
    .action(async (flags: EventsFlags) => done(await (await import("./run/events.ts")).runEvents(flags)));
