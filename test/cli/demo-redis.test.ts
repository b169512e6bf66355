/**
 * `esper demo --quick --redis URL` end to end: the grown arm with its layers owned by an `esper
 * worker` process and Tamiyo in an `esper tamiyo` process, this process training and following
 * them. While it runs, `esper status` shows them; at the end the run has grown the network along
 * the lifecycle, every decision came from the Tamiyo process with its answer, and the run's keys
 * are gone from Redis.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { EDGES, type SeedState } from "../../machines/lifecycle.ts";
import { runCli } from "../../src/cli/program.ts";
import type { DemoRecord } from "../../src/demo/record.ts";
import { esper } from "../support/esper-cli.ts";
import { connectOrFail, REDIS_URL, uniqueNamespace } from "../support/redis.ts";

const dir = mkdtempSync(join(tmpdir(), "esper-demo-redis-"));
const json = join(dir, "record.json");
const namespace = uniqueNamespace("demoredis").slice(0, 32);
let code = -1;
let lines: string[] = [];
let record: DemoRecord;
let status = "";
let admin: Redis;

beforeAll(async () => {
  // Without Redis this cannot run: fail saying how to start it, never skip.
  admin = await connectOrFail();
  const log = vi.spyOn(console, "log").mockImplementation(() => {});
  try {
    const demo = runCli(["demo", "--quick", "--no-progress", "--redis", REDIS_URL, "--namespace", namespace, "--out", join(dir, "report.html"), "--json", json]);
    // While it trains, the operator's view: poll until both services are there, Tamiyo beating as the leader.
    let running = true;
    void demo.finally(() => (running = false));
    while (running && !(/demo-worker-1 .*\(owner 2/.test(status) && /demo-tamiyo .*\(leader 1\)/.test(status) && /demo-trainer {2}esper\.trainer/.test(status))) {
      status = (await esper(["status", "--redis", REDIS_URL, "--namespace", namespace])).stdout;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    code = await demo;
    lines = log.mock.calls.map((c) => c.map(String).join(" "));
  } finally {
    log.mockRestore();
  }
  record = JSON.parse(readFileSync(json, "utf8")) as DemoRecord;
}, 240_000);

afterAll(() => admin?.disconnect());

describe("esper demo --quick --redis", () => {
  it("runs the grown arm across processes: a worker owns both layers, Tamiyo leads, and it says how to watch them", () => {
    expect(code).toBe(0);
    const text = lines.join("\n");
    expect(text).toMatch(/demo-worker-1: layer proj: owner \(lease token 1\)/);
    expect(text).toMatch(/demo-worker-1: layer hidden: owner \(lease token 1\)/);
    expect(text).toMatch(/demo-tamiyo: leading \(token 1\), steering proj, hidden/);
    expect(text).toContain(`esper status --redis ${REDIS_URL} --namespace ${namespace}`);
    expect(record.config["topology"]).toMatch(/across processes on Redis/);
  });

  it("esper status showed the worker, Tamiyo and the trainer while the run trained, and who owns each layer", () => {
    expect(status).toMatch(/demo-worker-1 {2}esper\.worker/);
    expect(status).toMatch(/demo-tamiyo {2}esper\.tamiyo .*\(leader 1\)/);
    expect(status).toMatch(/proj .*demo-worker-1/);
    expect(status).toMatch(/demo-trainer {2}esper\.trainer {2}healthy.*\(applied \d+, rebuilds 2\)/);
  });

  it("grew the network: seeds moved along the lifecycle's edges from DORMANT, each decision answered", () => {
    expect(record.grown.epochs).toHaveLength(record.host.epochs.length);
    expect(record.seeds.length).toBeGreaterThan(0);
    for (const seed of record.seeds) {
      let from: SeedState = "DORMANT";
      for (const step of seed.steps) {
        expect(EDGES[from], `${seed.layerId}/${seed.seedId}: ${from} -> ${step.state}`).toContain(step.state);
        from = step.state;
      }
      expect(seed.blueprint, `${seed.layerId}/${seed.seedId}`).not.toBeNull();
    }
    expect(record.summary.germinated).toBeGreaterThan(0);
    expect(record.decisions.length).toBeGreaterThan(0);
    expect(record.decisions.filter((d) => d.outcome?.success === true).length).toBeGreaterThan(0);
    expect(record.summary.paramsGrown).toBeGreaterThan(record.summary.paramsHost);
  });

  it("left nothing in Redis under its namespace", async () => {
    const keys: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await admin.scan(cursor, "MATCH", `${namespace}.*`, "COUNT", 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== "0");
    expect(keys).toEqual([]);
  });

  it("a Redis that cannot be reached is said at once, before anything trains, with what to do; exit 1", async () => {
    const result = await esper(["demo", "--quick", "--no-progress", "--redis", "redis://127.0.0.1:1"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1 .*: start one \(redis-server --port 6379\) or give --redis the URL of yours/);
    expect(result.stdout).not.toMatch(/training the host/);
  });

  it("--standbys, --namespace and --keep go with --redis: a usage error without it", async () => {
    const result = await esper(["demo", "--quick", "--standbys", "1"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--namespace, --standbys and --keep go with --redis URL/);
  });
});
