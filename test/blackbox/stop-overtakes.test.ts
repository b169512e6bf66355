/**
 * Black-box finding 3: an emergency stop waited behind the backlog. With 50,000 commands queued
 * for a layer, 49,920 (worker down) and 47,104 (worker running) were applied before the stop sent
 * on the layer's own stream: the `urgency` sort reordered only within one batch of 256.
 * docs/protocol.md: "an EmergencyStopCommand overtakes everything still queued for its layer".
 */
import { describe, expect, test } from "vitest";
import { emergencyStop, entryFields, keysOf, lifecycle, results, until, xadd, xaddMany } from "./outside.ts";
import { privateRedis } from "./private-redis.ts";

const QUEUED = 50_000;
const SEEDS = 1_000;

const env = privateRedis();

/** 50,000 growth commands: each seed germinates, then walks on (forced), fifty steps a seed in all. */
const backlog = (layer: string) => {
  const walk = ["GERMINATED", "TRAINING", "CANCELLED"];
  return Array.from({ length: QUEUED }, (_, i) => lifecycle(layer, i % SEEDS, walk[Math.min(2, Math.floor(i / SEEDS))]!));
};

const worker = (namespace: string, layer: string) => {
  const w = env.worker({ namespace, layers: [layer], seeds: SEEDS });
  return w;
};

/** How many growth commands were applied before the stop, and what the rest were answered. */
const tally = async (events: string, stopId: string) => {
  const got = await results(env.admin, events);
  const stopAt = got.findIndex((r) => r.correlation_id === stopId);
  const before = got.slice(0, stopAt).filter((r) => r.code === "ok").length;
  const after = got.slice(stopAt + 1).map((r) => r.code);
  return { stopAt, before, after, stop: got[stopAt]!, total: got.length };
};

describe("an emergency stop behind 50,000 queued commands", () => {
  test("sent while the worker is down: it is applied first, and every queued growth command is answered emergency_stopped", async () => {
    const k = keysOf("stop1", "L");
    await xaddMany(env.admin, k.control, backlog("L"));
    const stop = emergencyStop("L");
    await xadd(env.admin, k.control, stop);
    const w = worker("stop1", "L");
    await w.start(undefined);
    await until("every command answered", async () => (await env.admin.xlen(k.events)) >= QUEUED + 1, 180_000, 500);
    const { before, after, stop: answer, total } = await tally(k.events, stop.message_id);
    expect(answer).toMatchObject({ code: "ok", details: { stopped: true } });
    expect(before).toBe(0);
    expect(total).toBe(QUEUED + 1);
    // CANCELLED is not growth: the walk's last steps are still applied, in order, on a stopped layer.
    expect(new Set(after.slice(0, 2 * SEEDS))).toEqual(new Set(["emergency_stopped"]));
    await w.terminate();
  }, 300_000);

  test("sent while the worker works through the backlog: it takes effect within the batch in hand", async () => {
    const k = keysOf("stop2", "L");
    const w = worker("stop2", "L");
    await w.start(undefined);
    await xaddMany(env.admin, k.control, backlog("L"));
    const stop = emergencyStop("L");
    // The stop, and how many entries the layer's group had read by the instant it was written.
    const [, [, groups]] = (await env.admin.multi().xadd(k.control, "*", ...entryFields(k.control, stop)).xinfo("GROUPS", k.control).exec()) as [unknown, [unknown, unknown[][]]];
    const info = new Map<string, unknown>();
    for (let i = 0; i + 1 < groups[0]!.length; i += 2) info.set(String(groups[0]![i]), groups[0]![i + 1]);
    const readWhenSent = Number(info.get("entries-read"));
    await until("every command answered", async () => (await results(env.admin, k.events)).length >= QUEUED + 1, 180_000, 500);
    const { stopAt, stop: answer } = await tally(k.events, stop.message_id);
    expect(answer).toMatchObject({ code: "ok", details: { stopped: true } });
    // Every command still queued when the stop was written (not yet read by the group) is answered after it.
    expect(readWhenSent).toBeLessThan(QUEUED / 2);
    expect(stopAt).toBeLessThanOrEqual(readWhenSent);
    await w.terminate();
  }, 300_000);
});
