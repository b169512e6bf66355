import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { machineConfigs } from "../runtime/definitions.ts";

/** `esper machines --out DIR`: each machine's config as JSON for Stately Studio. */
export const runMachines = async (args: string[]): Promise<number> => {
  const { values } = parseArgs({ args, options: { out: { type: "string" } } });
  if (!values.out) {
    console.error("esper machines: --out DIR is required (the directory to write seed.json, layer.json, controller.json into)");
    return 2;
  }
  const dir = resolve(values.out);
  await mkdir(dir, { recursive: true });
  for (const [name, config] of Object.entries(machineConfigs())) {
    const path = join(dir, `${name}.json`);
    await writeFile(path, `${JSON.stringify(config, null, 2)}\n`);
    console.log(`wrote ${path}`);
  }
  console.log("import them in Stately Studio (Import > JSON), or createMachine(JSON.parse(...))");
  return 0;
};
