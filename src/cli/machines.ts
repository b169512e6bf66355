import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Command } from "commander";
import { machineConfigs } from "../runtime/definitions.ts";

/** `esper machines --out DIR`: each machine's config as JSON for Stately Studio. */
export const machinesCommand = (done: (code: number) => void): Command =>
  new Command("machines")
    .description("write the seed, layer and controller machines as JSON (Stately Studio imports them)")
    .requiredOption("--out <dir>", "the directory to write seed.json, layer.json, controller.json into")
    .addHelpText("after", "\nExample:\n  esper machines --out ./machines-json")
    .action(async (flags: { readonly out: string }) => done(await writeMachines(flags.out)));

const writeMachines = async (out: string): Promise<number> => {
  const dir = resolve(out);
  await mkdir(dir, { recursive: true });
  for (const [name, config] of Object.entries(machineConfigs())) {
    const path = join(dir, `${name}.json`);
    await writeFile(path, `${JSON.stringify(config, null, 2)}\n`);
    console.log(`wrote ${path}`);
  }
  console.log("import them in Stately Studio (Import > JSON), or createMachine(JSON.parse(...))");
  return 0;
};
