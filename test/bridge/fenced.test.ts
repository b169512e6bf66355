/**
 * A bridge serving under a lease (`fence`, as `esper worker` does) that has lost it without
 * noticing yet (paused past the lease, its renewals late): it takes nothing more from the control
 * stream. The next command stays unread for the new owner, not pending at the deposed one where
 * nobody would read it again, and the bridge steps down (`fenced`).
 */
import { describe, expect, test } from "vitest";
import { layerKeys } from "../../src/bridge/store.ts";
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
});
