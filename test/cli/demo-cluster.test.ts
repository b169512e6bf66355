/**
 * The demo's processes (src/demo/cluster.ts) do not outlive a demo that dies without stopping
 * them: an exit of the demo's process takes its worker and Tamiyo along.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { connectOrFail, REDIS_URL, uniqueNamespace } from "../support/redis.ts";

const SCRIPT = fileURLToPath(new URL("../support/cluster-then-exit.ts", import.meta.url));
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("the demo's processes", () => {
  test("a demo process that exits without stopping them takes them along", async () => {
    await (await connectOrFail()).quit();
    const namespace = uniqueNamespace("cluster").slice(0, 32);
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ["--import", "tsx", SCRIPT, REDIS_URL, namespace], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (err += d.toString()));
      child.on("exit", (exitCode) => resolve({ code: exitCode, stdout: out, stderr: err }));
    });
    expect(code, stderr).toBe(3);
    const pids = JSON.parse(stdout.trim().split("\n").pop()!) as number[];
    expect(pids).toHaveLength(2);
    for (let waited = 0; pids.some(alive) && waited < 5_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
    expect(pids.filter(alive)).toEqual([]);
  }, 60_000);
});
