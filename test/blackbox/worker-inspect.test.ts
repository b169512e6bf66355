/**
 * `esper worker` honours ESPER_INSPECT as a system in process does (black-box finding of issue
 * 12: the worker ignored it): its layer and seed actors are inspected, here recorded offline.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { keysOf, lifecycle, resultOf, xadd } from "./outside.ts";
import { privateRedis } from "./private-redis.ts";

const env = privateRedis();

describe("esper worker with ESPER_INSPECT", () => {
  test("records its layer and seed actors, and what they were sent, as JSON lines", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "esper-worker-inspect-")), "inspect.jsonl");
    const w = env.worker({ namespace: "insp", layers: ["L"], seeds: 4, env: { ESPER_INSPECT: `file:${path}` } });
    await w.start(undefined);
    const k = keysOf("insp", "L");
    const command = lifecycle("L", 2, "GERMINATED");
    await xadd(env.admin, k.control, command);
    expect(await resultOf(env.admin, k.events, command.message_id)).toMatchObject({ code: "ok" });
    await w.terminate();
    const events = readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as { type: string; name?: string; event?: { type: string } });
    expect(events.filter((e) => e.type === "@xstate.actor").map((e) => e.name).sort()).toEqual(["layer", "seed-0", "seed-1", "seed-2", "seed-3"]);
    expect(events.some((e) => e.type === "@xstate.event" && e.event?.type === "to.GERMINATED")).toBe(true);
  }, 60_000);

  test("a spec it cannot read is a usage error naming what to use", async () => {
    const w = env.worker({ namespace: "insp2", layers: ["L"], seeds: 1, env: { ESPER_INSPECT: "udp://nowhere" } });
    await expect(w.start(undefined, 30_000)).rejects.toThrow();
    expect(w.lastExitCode).toBe(2);
    expect(w.output).toMatch(/ws:\/\/host:port.*file:PATH/);
  }, 60_000);
});
