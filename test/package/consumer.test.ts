/**
 * esper as its users get it: packed with `npm pack` (which builds it), installed from the tarball
 * into scratch projects that have neither tsx nor the repository's sources, and used from there:
 * every entry imported by plain Node, a TypeScript 5 consumer compiled against the types, the
 * installed `esper` command, and README's examples run as they are written.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REDIS_URL } from "../support/redis.ts";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const TSC5 = join(REPO, "node_modules/typescript5/bin/tsc");
const ENTRIES = ["esper", "esper/kasmina", "esper/protocol", "esper/effect"] as const;

interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

// npm run from `npm test` exports its own npm_* settings; the scratch projects get a plain environment.
const cleanEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("npm_") && k !== "NODE_OPTIONS" && k !== "INIT_CWD" && k !== "VITEST" && !k.startsWith("VITEST_")));

const run = (file: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv(), timeout = 240_000): Promise<Ran> =>
  new Promise((resolve) => {
    execFile(file, args, { cwd, env, timeout, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
      resolve({ code, stdout, stderr: error !== null && typeof error.code !== "number" ? `${stderr}\n${error.message}` : stderr });
    });
  });

const must = async (what: string, ran: Promise<Ran>): Promise<Ran> => {
  const r = await ran;
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r;
};

/** A scratch project that installed the tarball from npm's cache (the registry for what the cache lacks). */
const scratchProject = async (dir: string, tarball: string, extra: readonly string[] = []): Promise<void> => {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "scratch", version: "1.0.0", private: true, type: "module" }, null, 2));
  await must("npm install", run("npm", ["install", tarball, ...extra, "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], dir));
};

/** README's TypeScript examples that import esper, in the order they appear. */
const readmeExamples = (): string[] =>
  [...readFileSync(join(REPO, "README.md"), "utf8").matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((code) => /from "esper(\/[a-z]+)?"/.test(code));

let work: string;
let tarball: string;
let consumer: string;
let hook: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "esper-pack-"));
  const packed = await must("npm pack", run("npm", ["pack", "--pack-destination", work, "--loglevel=error"], REPO));
  tarball = join(work, packed.stdout.trim().split("\n").at(-1)!);
  consumer = join(work, "consumer");
  await scratchProject(consumer, tarball, ["@types/node@20"]);
  // A module hook that names every TensorFlow.js, ioredis or Effect module a process resolves (on stderr).
  writeFileSync(
    join(work, "hook.mjs"),
    `export async function resolve(spec, context, next) {
  if (/^(@tensorflow\\/|ioredis$|effect($|\\/))/.test(spec)) process.stderr.write("LOADED " + spec + "\\n");
  return next(spec, context);
}\n`,
  );
  writeFileSync(join(work, "register.mjs"), `import { register } from "node:module";\nregister(${JSON.stringify(`file://${join(work, "hook.mjs")}`)});\n`);
  hook = join(work, "register.mjs");
}, 420_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("the packed tarball", () => {
  it("ships dist, bin, docs, README, LICENSE and package.json, and no tests, benchmarks or sources", async () => {
    const listed = (await must("tar", run("tar", ["-tzf", tarball], work))).stdout.trim().split("\n");
    const files = listed.map((f) => f.replace(/^package\//, ""));
    console.log(`packed: ${files.length} files`);
    const outside = files.filter((f) => !/^(dist\/(src|machines)\/|bin\/|docs\/)/.test(f) && !["README.md", "LICENSE", "package.json"].includes(f));
    expect(outside).toEqual([]);
    for (const entry of ["dist/src/index.js", "dist/src/index.d.ts", "dist/src/api/kasmina.js", "dist/src/api/protocol.d.ts", "dist/src/cli/main.js", "bin/esper.js", "docs/protocol.md", "LICENSE"]) {
      expect(files).toContain(entry);
    }
    expect(files.filter((f) => /\.test\.|^test\/|^bench\/|\.ts$/.test(f) && !f.endsWith(".d.ts"))).toEqual([]);
    // README links only files that ship.
    const links = [...readFileSync(join(REPO, "README.md"), "utf8").matchAll(/\]\(([^)#]+)(#[^)]*)?\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/.test(l));
    expect(links.length).toBeGreaterThan(0);
    expect(links.filter((l) => !files.includes(l.replace(/^\.\//, "")))).toEqual([]);
  });

  it("installs without tsx: the package depends on no TypeScript loader", () => {
    expect(existsSync(join(consumer, "node_modules/esper/dist/src/index.js"))).toBe(true);
    expect(existsSync(join(consumer, "node_modules/tsx"))).toBe(false);
    // One tfjs, shared by the user's model and esper (peer dependencies), installed with npm's defaults.
    expect(existsSync(join(consumer, "node_modules/@tensorflow/tfjs-core/package.json"))).toBe(true);
    expect(existsSync(join(consumer, "node_modules/esper/node_modules/@tensorflow"))).toBe(false);
  });
});

describe("a plain Node consumer", () => {
  it.each(ENTRIES)("imports %s from ESM; only esper/kasmina loads TensorFlow.js", async (entry) => {
    const r = await must(`import ${entry}`, run(process.execPath, ["--import", hook, "--input-type=module", "-e", `const m = await import(${JSON.stringify(entry)}); console.log(Object.keys(m).length);`], consumer));
    const names = Number(r.stdout.trim());
    expect(names).toBeGreaterThan(0);
    const tfjs = r.stderr.split("\n").filter((l) => l.startsWith("LOADED @tensorflow/"));
    if (entry === "esper/kasmina") expect(tfjs.length).toBeGreaterThan(0);
    else expect(tfjs).toEqual([]);
  });

  it("requires esper from CommonJS", async () => {
    const r = await must("require esper", run(process.execPath, ["-e", `const m = require("esper"); console.log(typeof m.startSystem, typeof m.MemoryBus)`], consumer));
    expect(r.stdout.trim()).toBe("function function");
  });

  it("runs the installed esper command: --help and --version load neither TensorFlow.js, Redis nor Effect", async () => {
    const bin = join(consumer, "node_modules/.bin/esper");
    const started = performance.now();
    const help = await must("esper --help", run(process.execPath, ["--import", hook, bin, "--help"], consumer));
    const helpMs = performance.now() - started;
    expect(help.stdout).toMatch(/Usage: esper \[options\] \[command\]/);
    expect(help.stdout).toMatch(/worker/);
    expect(help.stderr.split("\n").filter((l) => l.startsWith("LOADED"))).toEqual([]);
    const workerHelp = await must("esper worker --help", run(process.execPath, ["--import", hook, bin, "worker", "--help"], consumer));
    expect(workerHelp.stdout).toMatch(/Usage: esper worker/);
    expect(workerHelp.stderr.split("\n").filter((l) => l.startsWith("LOADED"))).toEqual([]);
    const version = await must("esper --version", run(process.execPath, [bin, "--version"], consumer));
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).version);
    console.log(`installed esper --help: ${helpMs.toFixed(0)} ms (with the module hook)`);
  });

  it("runs README's examples that need no TensorFlow.js, on the embedded bus and on Redis (REDIS_URL)", async () => {
    const examples = readmeExamples().filter((code) => !code.includes("esper/kasmina"));
    expect(examples.length).toBeGreaterThanOrEqual(2);
    for (const [i, code] of examples.entries()) {
      const file = join(consumer, `readme-${i}.mjs`);
      writeFileSync(file, code.replaceAll("redis://127.0.0.1:6379", REDIS_URL));
      await must(`README example ${i}:\n${code}`, run(process.execPath, [file], consumer, cleanEnv(), 60_000));
    }
  });
});

describe("a TypeScript 5 consumer", () => {
  const tsconfig = (files: readonly string[]) =>
    JSON.stringify({ compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, skipLibCheck: true, noEmit: true, types: ["node"] }, files });

  it("compiles against the types of every entry, and README's examples type-check", async () => {
    const dir = join(consumer, "ts-good");
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "consumer.ts"),
      `import { startSystem, MemoryBus, startClient, lifecycleCommand, SEED_STATES, type CommandResult, type SeedState, type RunningSystem } from "esper";
import { KasminaLayer, initBackend, trainerHooks, layerSpecOf, type KasminaLayerArgs } from "esper/kasmina";
import { encodeEntry, decodeEntry, streams, PROTOCOL_VERSION, LifecycleTransitionCommand } from "esper/protocol";
import { makeSystem, makeRedisBus, makeClient } from "esper/effect";

const first: SeedState = SEED_STATES[0];
const bus = new MemoryBus();
const system: RunningSystem = await startSystem({ layers: [{ id: "dense1", seeds: 4 }], bus });
const client = await startClient(bus);
const result: CommandResult = await client.send(lifecycleCommand({ layer_id: "dense1", seed_id: 1, target_state: "GERMINATED" }));
const args: KasminaLayerArgs = { units: 8, numSeeds: 2 };
const fields = encodeEntry(lifecycleCommand({ layer_id: "dense1", seed_id: 1, target_state: "TRAINING" }), { stream: streams().control("dense1") });
console.log(first, result.code, args, fields, PROTOCOL_VERSION, decodeEntry, LifecycleTransitionCommand, makeSystem, makeRedisBus, makeClient, KasminaLayer, initBackend, trainerHooks, layerSpecOf);
await client.close();
await system.close();
`,
    );
    const readme = readmeExamples().map((code, i) => {
      writeFileSync(join(dir, `readme-${i}.ts`), `${code}\nexport {};\n`);
      return `readme-${i}.ts`;
    });
    writeFileSync(join(dir, "tsconfig.json"), tsconfig(["consumer.ts", ...readme]));
    await must("tsc (TypeScript 5)", run(process.execPath, [TSC5, "-p", dir], dir));
    expect((await run(process.execPath, [TSC5, "-v"], dir)).stdout).toMatch(/^Version 5\./);
  });

  it("gets real types, not any: a misuse is a compile error", async () => {
    const dir = join(consumer, "ts-bad");
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "bad.ts"),
      `import { startSystem } from "esper";
import { lifecycleCommand } from "esper/protocol";
const system = await startSystem({ layers: [{ id: "dense1", seeds: 4 }] });
const ids: number = system.layerIds;
lifecycleCommand({ layer_id: "dense1", seed_id: "one", target_state: "TRAINING" });
`,
    );
    writeFileSync(join(dir, "tsconfig.json"), tsconfig(["bad.ts"]));
    const r = await run(process.execPath, [TSC5, "-p", dir], dir);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(/bad\.ts\(4,\d+\): error TS2322/);
    expect(r.stdout).toMatch(/bad\.ts\(5,\d+\): error TS2322/);
  });
});

describe("a second scratch project", () => {
  it("runs README's data-plane example (KasminaLayer in a tfjs model) to the end", async () => {
    const dir = join(work, "data-plane");
    await scratchProject(dir, tarball);
    const example = readmeExamples().find((code) => code.includes("esper/kasmina"));
    expect(example).toBeDefined();
    writeFileSync(join(dir, "example.mjs"), example!);
    const r = await must(`README data-plane example:\n${example}`, run(process.execPath, ["example.mjs"], dir, cleanEnv(), 120_000));
    expect(r.stdout).toMatch(/tfjs backend: wasm/);
    expect(r.stdout).toMatch(/seed 3: TRAINING, loss \d/);
  });
});
