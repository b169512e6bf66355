/** The work of `esper machines`, loaded only when it runs (so `--help` loads none of it). */
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { MACHINES, machineConfigs, machineMermaid } from "../../runtime/definitions.ts";

export const writeMachines = async (out: string, format: "json" | "mermaid"): Promise<number> => {
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
