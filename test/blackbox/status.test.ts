/**
 * `esper status` from outside: workers announce themselves and beat on P.coordination; status
 * lists them with their layers' owners, lag, pending and dead letters, and flags a worker that
 * stopped beating and a layer nobody owns (exit 1), as an operator would need to see them.
 */
import { describe, expect, test } from "vitest";
import { esper } from "../support/esper-cli.ts";
import { privateRedis } from "./private-redis.ts";

const redis = privateRedis();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("esper status", () => {
  test("shows live workers, each layer's owner and backlog; then flags a SIGKILLed worker and its ownerless layer, and a stopped one", async () => {
    const namespace = "status"; // a Redis of this file alone
    const a = redis.worker({ namespace, layers: ["s1"], seeds: 4 });
    await a.start("status-a");
    const b = redis.worker({ namespace, layers: ["s1"], seeds: 4 });
    await b.start("status-b");
    const c = redis.worker({ namespace, layers: ["s2"], seeds: 4 });
    await c.start("status-c");
    const args = ["status", "--redis", redis.url, "--namespace", namespace];

    const live = await esper(args);
    expect(live.code, live.stderr).toBe(0);
    expect(live.stdout).toMatch(/services: 3 live, 0 stopped beating, 0 stopped/);
    expect(live.stdout).toMatch(/status-a {2}esper\.worker {2}layers s1 {2}healthy, last beat \d+\.\d s ago {2}up \d+ s {2}\(owner 1, standby 0\)/);
    expect(live.stdout).toMatch(/status-b {2}esper\.worker {2}layers s1 {2}healthy.*\(owner 0, standby 1\)/);
    expect(live.stdout).toMatch(/ {2}s1 {2}owner status-a\/\w+ \(token 1\) {2}pending 0 {2}lag 0 {2}dead letters 0/);
    expect(live.stdout).toMatch(/ {2}s2 {2}owner status-c\/\w+ \(token 1\)/);

    const json = JSON.parse((await esper([...args, "--json", "--layer", "s1"])).stdout);
    expect(json.layers).toEqual([{ layerId: "s1", owner: { holder: expect.stringMatching(/^status-a\//), token: 1 }, pending: 0, lag: 0, deadLetters: 0 }]);

    // SIGKILL: no last beat, and its lease runs out.
    await c.kill();
    expect(await a.terminate()).toBe(0); // a clean stop: a last beat that says so, and b takes s1 over
    await sleep(7_000); // past three heartbeat intervals (2 s each)
    const after = await esper(args.concat(["--layer", "s1,s2"]));
    expect(after.code).toBe(1);
    expect(after.stdout).toMatch(/services: 1 live, 1 stopped beating, 1 stopped/);
    expect(after.stdout).toMatch(/status-c {2}esper\.worker {2}layers s2 {2}STOPPED BEATING \(silent \d+\.\d s, beats every 2\.0 s\)/);
    expect(after.stdout).toMatch(/status-a {2}esper\.worker {2}layers s1 {2}stopped/);
    expect(after.stdout).toMatch(/ {2}s1 {2}owner status-b\/\w+ \(token 2\)/);
    expect(after.stdout).toMatch(/ {2}s2 {2}NO OWNER/);
    expect(await b.terminate()).toBe(0);
  }, 90_000);
});
