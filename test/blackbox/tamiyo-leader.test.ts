/**
 * `esper tamiyo` from outside: two started for one system, one leads and steers, the other
 * stands by; the leader SIGKILLed, the standby takes over within the lease's bound and steers
 * with a newer token; a command carrying the deposed leader's token is refused `deposed_leader`
 * by the layer, and changes nothing.
 */
import { describe, expect, test } from "vitest";
import { encodeEntry } from "../../src/protocol/entry.ts";
import { layerHealthReport, lifecycleCommand } from "../../src/protocol/make.ts";
import { streams } from "../../src/protocol/streams.ts";
import { withLeaderToken } from "../../src/tamiyo/leader.ts";
import { esper } from "../support/esper-cli.ts";
import { privateRedis } from "./private-redis.ts";

const redis = privateRedis();
const names = streams("lead");
const LAYER = "steered";

/** The trainer's side: a health report saying seed `dead` is dead (idle units, no gradient). */
const reportDead = async (dead: number) => {
  const t = Date.now() / 1000;
  const message = layerHealthReport({
    source: "test.trainer",
    layer_id: LAYER,
    total_seeds: 4,
    active_seeds: 0,
    health_metrics: Object.fromEntries([0, 1, 2, 3].map((s) => [String(s), s === dead ? { sparsity: 1, gradient_norm: 0 } : { sparsity: 0.1, gradient_norm: 1 }])),
    performance_summary: {},
    telemetry_window: [t, t],
  });
  const fields = encodeEntry(message, { stream: names.telemetry(LAYER) });
  await redis.admin.xadd(names.telemetry(LAYER), "*", ...Object.entries(fields).flatMap(([k, v]) => [k, typeof v === "string" ? v : Buffer.from(v)]));
};

/** The first CommandResult for `id` on the layer's event stream. */
const resultOf = async (id: string): Promise<{ code: string; error: string | null }> => {
  for (let tries = 0; tries < 200; tries++) {
    const entries = (await redis.admin.xrange(names.events(LAYER), "-", "+")) as [string, string[]][];
    for (const [, fields] of entries) {
      const data = fields[fields.indexOf("data") + 1]!;
      if (data.includes(id) && fields[fields.indexOf("type") + 1] === "CommandResult") return JSON.parse(data);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no result for ${id}`);
};

describe("esper tamiyo: one leader", () => {
  test("one leads and steers, one stands by; the leader SIGKILLed, the standby leads with a newer token; the deposed token is refused deposed_leader", async () => {
    const worker = redis.worker({ namespace: names.namespace, layers: [LAYER], seeds: 4, args: ["--codec", "json"] }); // JSON events: read here as they are
    await worker.start("lead-worker");
    const tamiyo = (name: string) => redis.worker({ namespace: names.namespace, layers: [LAYER], seeds: 4, command: "tamiyo", args: ["--strategy", "aggressive", "--decide-every-ms", "200", "--codec", "json"] });
    const a = tamiyo("a");
    await a.start("tamiyo-a");
    const b = tamiyo("b");
    await b.start("tamiyo-b");
    expect(a.output).toMatch(/esper tamiyo tamiyo-a: leading \(token 1\), steering steered/);
    expect(b.output).toMatch(/esper tamiyo tamiyo-b: standing by \(tamiyo-a\/\w+ leads\)/);

    // The leader steers: a dead chunk's seed is germinated, by a command carrying her token.
    const decided = a.nextLine(/"action":"germinate/, 20_000);
    await reportDead(2);
    expect(JSON.parse(await decided)).toMatchObject({ layer: LAYER, seed: 2 });

    const status = await esper(["status", "--redis", redis.url, "--namespace", names.namespace]);
    expect(status.stdout).toMatch(/tamiyo-a {2}esper\.tamiyo .*\(leader 1\)/);
    expect(status.stdout).toMatch(/tamiyo-b {2}esper\.tamiyo .*\(leader 0\)/);

    // SIGKILL the leader: the standby leads within the lease's bound (3 s + a 1 s poll).
    const leading = b.nextLine(/leading \(token 2\)/, 15_000);
    const killedAt = Date.now();
    await a.kill();
    await leading;
    const takeover = Date.now() - killedAt;
    console.log(`tamiyo failover: standby led ${takeover} ms after the leader's SIGKILL`);
    expect(takeover).toBeLessThan(6_000);

    // The new leader speaks first (she moves the germinated seeds on), and the layer takes her commands ...
    await reportDead(0); // she decides on fresh telemetry
    let line: string | undefined;
    for (let waited = 0; line === undefined && waited < 20_000; waited += 50) {
      line = b.output.split("\n").find((l) => l.startsWith("{") && l.includes('"action"'));
      if (line === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    expect(line, b.output).toBeDefined();
    expect(await resultOf(JSON.parse(line!).command)).toMatchObject({ code: "ok" });
    // ... after which a command carrying the deposed leader's token changes nothing.
    const stale = withLeaderToken(lifecycleCommand({ layer_id: LAYER, seed_id: 3, target_state: "GERMINATED", source: "tamiyo.tamiyo-a" }), 1);
    const fields = encodeEntry(stale, { stream: names.control(LAYER), codec: "json" });
    await redis.admin.xadd(names.control(LAYER), "*", ...Object.entries(fields).flatMap(([k, v]) => [k, typeof v === "string" ? v : Buffer.from(v)]));
    const refused = await resultOf(stale.message_id);
    expect(refused).toMatchObject({ code: "deposed_leader" });
    expect(refused.error).toMatch(/leader token 1 is older than 2/);

    expect(await b.terminate()).toBe(0);
    expect(await worker.terminate()).toBe(0);
  }, 120_000);
});
