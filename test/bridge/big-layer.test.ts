/**
 * A command that touches every seed of a 100,000-seed layer commits whole on Redis: 100,000
 * transitions, 100,000 snapshots and the answer, atomic to readers, in one commit of well over a
 * million arguments (regression: ~125,000 were a RangeError, taken for an outage and retried
 * forever). Then a restarted bridge restores every seed from what was committed.
 */
import { afterEach, expect, test } from "vitest";
import { LayerHost } from "../../src/runtime/layer-host.ts";
import { lifecycle } from "../runtime/commands.ts";
import { openClient, openFixture, run, startBridge } from "./harness.ts";

const SEEDS = 100_000;
const hosts: LayerHost[] = [];
afterEach(() => {
  for (const h of hosts.splice(0)) h.stop();
});

test("every seed of a 100,000-seed layer moved by one command: answered, committed atomically, restored by the next worker", async () => {
  const fx = await openFixture("RedisBus");
  const worker = await startBridge(fx, { numSeeds: SEEDS });
  const client = await openClient(fx);
  const result = await client.send(lifecycle("a", null, "GERMINATED", { force: true }), { timeoutMs: 240_000 });
  expect(result).toMatchObject({ code: "ok", details: { moved: SEEDS } });
  expect(await run(fx.bus.length(fx.names.events("a")))).toBe(SEEDS + 1);
  expect(Object.keys(await run(fx.bus.hgetall(fx.names.state("a"))))).toHaveLength(SEEDS);
  await worker.close();
  const next = await startBridge(fx, { numSeeds: SEEDS });
  expect(next.host.seeds().every((s) => s.state === "GERMINATED")).toBe(true);
}, 300_000);
