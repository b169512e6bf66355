import { Command, Option } from "commander";

/** `esper machines --out DIR [--format json|mermaid]`: each machine as a JSON config for Stately Studio, or as a Mermaid diagram. */
export const machinesCommand = (done: (code: number) => void): Command =>
  new Command("machines")
    .description("write the seed, layer and controller machines as JSON configs (Stately Studio imports them) or Mermaid state diagrams")
    .requiredOption("--out <dir>", "the directory to write seed, layer and controller into")
    .addOption(new Option("--format <format>", "json (machine configs) or mermaid (stateDiagram-v2, for docs and offline viewing)").choices(["json", "mermaid"]).default("json"))
    .addHelpText("after", "\nExamples:\n  esper machines --out ./machines-json\n  esper machines --out ./docs/diagrams --format mermaid")
    .action(async (flags: { readonly out: string; readonly format: "json" | "mermaid" }) => done(await (await import("./run/machines.ts")).writeMachines(flags.out, flags.format)));
