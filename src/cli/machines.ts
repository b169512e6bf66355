import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Command, Option } from "commander";
import { MACHINES, machineConfigs, machineMermaid } from "../runtime/definitions.ts";

/** `esper machines --out DIR [--format json|mermaid]`: each machine as a JSON config for Stately Studio, or as a Mermaid diagram. */
export const machinesCommand = (done: (code: number) => void): Command =>
  new Command("machines")
    .description("write the seed, layer and controller machines as JSON configs (Stately Studio imports them) or Mermaid state diagrams")
    .requiredOption("--out <dir>", "the directory to write seed, layer and controller into")
    .addOption(new Option("--format <format>", "json (machine configs) or mermaid (stateDiagram-v2, for docs and offline viewing)").choices(["json", "mermaid"]).default("json"))
    .addHelpText("after", "\nExamples:\n  esper machines --out ./machines-json\n  esper machines --out ./docs/diagrams --format mermaid")
    .action(async (flags: { readonly out: string; readonly format: "json" | "mermaid" }) => done(await writeMachines(flags.out, flags.format)));

const writeMachines = async (out: string, format: "json" | "mermaid"): Promise<number> => {
  const dir = resolve(out);
  await mkdir(dir, { recursive: true });
  const files: [string, string][] =
    format === "json"
      ? Object.entries(machineConfigs()).map(([name, config]) => [`${name}.json`, `${JSON.stringify(config, null, 2)}\n`])
      : Object.entries(MACHINES).map(([name, machine]) => [`${name}.mmd`, machineMermaid(machine)]);
  for (const [file, text] of files) {
    const path = join(dir, file);
    await writeFile(path, text);
    console.log(`wrote ${path}`);
  }
  console.log(format === "json" ? "import them in Stately Studio (Import > JSON), or createMachine(JSON.parse(...))" : "render them with Mermaid (a ```mermaid block on GitHub, or mermaid-cli)");
  return 0;
};
