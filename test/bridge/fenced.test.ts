/**
 * A bridge serving under a lease (`fence`, as `esper worker` does) that has lost it without
 * noticing yet (paused past the lease, its renewals late): it takes nothing more from the control
 * stream. The next command stays unread for the new owner, not pending at the deposed one where
 * nobody would read it again, and the bridge steps down (`fenced`).
 */
import { describe, expect, test } from "vitest";
import { layerKeys } from "../../src/bridge/store.ts";
import { streams } from "../../src/protocol/streams.ts";
import { lifecycle } from "../runtime/commands.ts";
import { BUS_KINDS, openClient, openFixture, pendingOf, publishCommand, resultsOf, run, startBridge, waitFor, watchResults } from "./harness.ts";

describe.each(BUS_KINDS)("on %s, a deposed owner's bridge", (kind) => {
  test("reads nothing once its lease names another owner: the next command waits unread for the new owner, and the bridge is fenced", async () => {
    const fx = await openFixture(kind);
    const keys = layerKeys(fx.names, "a");
    const lease = (holder: string, op: "acquire" | "release") => run(fx.bus.lease({ op, key: keys.lease, counter: keys.fence, holder, ttlMs: 60_000 }));
    expect(await lease("w1", "acquire")).toMatchObject({ held: true, token: 1 });
    const running = await startBridge(fx, { options: { fence: "w1#1" } });
    const client = await openClient(fx);
    const results = await watchResults(client, "a");

    const first = lifecycle("a", 0, "GERMINATED");
    await publishCommand(fx, first);
    expect(await results.result(first.message_id)).toMatchObject({ code: "ok" });

    // Its lease ran out and another worker holds it now; this bridge has not heard.
    await lease("w1", "release");
    expect(await lease("w2", "acquire")).toMatchObject({ held: true, token: 2 });
    let fenced = false;
    void run(running.bridge.fenced).then(() => (fenced = true));
    const second = lifecycle("a", 1, "GERMINATED");
    await publishCommand(fx, second);
    await waitFor("the bridge to step down", () => fenced, 5_000);

    expect(await pendingOf(fx, fx.names.control("a"))).toEqual([]);
    const group = await run(fx.bus.groupInfo(fx.names.control("a"), "kasmina"));
    const last = await run(fx.bus.lastId(fx.names.control("a")));
    expect(group?.lastDeliveredId).not.toBe(last); // the second command was delivered to nobody
    expect(await resultsOf(fx, "a", second.message_id)).toEqual([]);
  });

  test("a deposed Tamiyo's command is refused deposed_leader as soon as a newer leader holds her lease, before that one has spoken to the layer", async () => {
    const fx = await openFixture(kind);
    const lease = fx.names.leaderLease;
    const tamiyo = (holder: string, op: "acquire" | "release") => run(fx.bus.lease({ op, key: lease.key, counter: lease.counter, holder, ttlMs: 60_000 }));
    await startBridge(fx);
    const client = await openClient(fx);
    const results = await watchResults(client, "a");
    expect(await tamiyo("tamiyo-a", "acquire")).toMatchObject({ token: 1 });
    const first = lifecycle("a", 0, "GERMINATED", { metadata: { leader_token: 1 } });
    await publishCommand(fx, first);
    expect(await results.result(first.message_id)).toMatchObject({ code: "ok" });
    // tamiyo-a is paused past her lease; tamiyo-b leads with token 2 but has sent this layer nothing.
    await tamiyo("tamiyo-a", "release");
    expect(await tamiyo("tamiyo-b", "acquire")).toMatchObject({ token: 2 });
    const stale = lifecycle("a", 1, "GERMINATED", { metadata: { leader_token: 1 } });
    await publishCommand(fx, stale);
    expect(await results.result(stale.message_id)).toMatchObject({ code: "deposed_leader" });
    const fresh = lifecycle("a", 1, "GERMINATED", { metadata: { leader_token: 2 } });
    await publishCommand(fx, fresh);
    expect(await results.result(fresh.message_id)).toMatchObject({ code: "ok" });
    expect(streams(fx.names.namespace).leaderLease.counter).toBe(`${fx.names.namespace}.fence.tamiyo`);
  });
});
