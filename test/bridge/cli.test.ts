/**
 * `esper worker` and `esper send` as a new user runs them, as child processes on a real Redis:
 * the worker says `ready`, `send` prints the CommandResult as JSON and exits 0 when it succeeded
 * (1 when it was refused), and SIGTERM stops the worker promptly with exit code 0.
 *
 * `send` runs as `npx tsx src/cli/main.ts send ...`. The worker runs as the `tsx` that npx
 * resolves (node_modules/.bin/tsx), because the SIGTERM is for the worker: `npm exec` neither
 * forwards SIGTERM to its child nor waits for it (it exits 143 and leaves the worker running),
 * so a supervisor runs `tsx`/`node` directly, or signals the whole process group.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { afterEach, expect, test } from "vitest";
import type { CommandResult } from "../../src/protocol/messages.ts";
import { REDIS_URL } from "../support/redis.ts";
import { decodeSeed, openFixture, run } from "./harness.ts";

const NPX_ESPER = ["npx", "tsx", "src/cli/main.ts"];
const TSX_ESPER = ["node_modules/.bin/tsx", "src/cli/main.ts"];

/** Each child leads its own process group, so that nothing it started outlives the test. */
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // the group is gone already
    }
  }
});

interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

const esper = (command: readonly string[], args: readonly string[]) => {
  const [file, ...rest] = command;
  const child = spawn(file!, [...rest, ...args], { stdio: ["ignore", "pipe", "pipe"], detached: true, env: { ...process.env, FORCE_COLOR: "0" } });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk) => (stdout += chunk));
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  const finished = new Promise<Finished>((resolve) => child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr })));
  /** Resolves when stdout has a line equal to `line`; rejects if the process ends first. */
  const line = (wanted: string, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no line '${wanted}' within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`)), timeoutMs);
      const check = () => {
        if (stdout.split("\n").includes(wanted)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on("data", check);
      check();
      void finished.then((f) => {
        clearTimeout(timer);
        reject(new Error(`exited (${f.code ?? f.signal}) before printing '${wanted}'; stdout: ${f.stdout}; stderr: ${f.stderr}`));
      });
    });
  return { child, finished, line, stdout: () => stdout };
};

const send = async (namespace: string, layer: string, seed: string, target: string, ...more: string[]) => {
  const { finished } = esper(NPX_ESPER, ["send", "--redis", REDIS_URL, "--namespace", namespace, "--layer", layer, "--seed", seed, "--target", target, ...more]);
  const f = await finished;
  let result: CommandResult | undefined;
  try {
    result = JSON.parse(f.stdout) as CommandResult;
  } catch {
    throw new Error(`esper send printed no JSON (exit ${f.code}); stdout: ${f.stdout}; stderr: ${f.stderr}`);
  }
  return { code: f.code, result };
};

test("esper worker hosts layers on Redis, esper send gets each CommandResult, and SIGTERM stops the worker with exit code 0", async () => {
  const fx = await openFixture("RedisBus");
  const namespace = fx.names.namespace;
  const worker = esper(TSX_ESPER, ["worker", "--redis", REDIS_URL, "--layer", "a,b", "--seeds", "4", "--namespace", namespace]);
  await worker.line("ready", 30_000);

  // Both at once: a user in two terminals.
  const [ok, refused] = await Promise.all([send(namespace, "a", "0", "germinated", "--reason", "loss plateau"), send(namespace, "b", "3", "FOSSILIZED")]);
  expect(ok.code).toBe(0);
  expect(ok.result).toMatchObject({ message_type: "CommandResult", layer_id: "a", seed_id: 0, success: true, code: "ok", details: { from_state: "DORMANT", to_state: "GERMINATED" } });
  expect(refused.code).toBe(1);
  expect(refused.result).toMatchObject({ layer_id: "b", seed_id: 3, success: false, code: "invalid_transition" });
  expect(refused.result!.error).toMatch(/DORMANT -> FOSSILIZED is not an edge/);

  // What the worker committed is in Redis for the next one.
  const stored = await run(fx.bus.hgetall(fx.names.state("a")));
  expect(decodeSeed(stored["0"]!).state).toBe("GERMINATED");

  const stoppedAt = Date.now();
  worker.child.kill("SIGTERM");
  const exit = await worker.finished;
  expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
  expect(Date.now() - stoppedAt).toBeLessThan(5_000);
  expect(await run(fx.bus.pending(fx.names.control("a"), "kasmina"))).toEqual([]);
}, 60_000);
