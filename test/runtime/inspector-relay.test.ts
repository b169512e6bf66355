/**
 * `esper inspect`'s relay: inspected processes send to it, browsers (here: plain WebSocket
 * clients) receive from it. A browser that connects late is told of every actor, with its state
 * now, and of no session it was not told exists (Stately's own relay replays 200 messages).
 */
import { afterEach, describe, expect, test } from "vitest";
import { WebSocket } from "ws";
import { startSystem } from "../../src/runtime/system.ts";
import { startInspectorRelay, type InspectorRelay } from "../../src/runtime/inspector-relay.ts";
import { esper, esperRunning } from "../support/esper-cli.ts";

interface Recorded {
  readonly type: string;
  readonly sessionId: string;
  readonly name?: string;
  readonly snapshot?: { readonly value?: unknown };
}

/** A browser's side of the relay: keeps what arrives; `until` resolves once `predicate` holds. */
const browser = async (url: string) => {
  const socket = new WebSocket(url);
  const received: Recorded[] = [];
  let wake = () => {};
  socket.on("message", (data) => {
    received.push(JSON.parse(data.toString()) as Recorded);
    wake();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  const until = (predicate: () => boolean) =>
    new Promise<void>((resolve) => {
      wake = () => predicate() && resolve();
      wake();
    });
  const registered = () => new Set(received.filter((e) => e.type === "@xstate.actor").map((e) => e.sessionId));
  return { received, until, registered, close: () => socket.close() };
};

let relay: InspectorRelay | undefined;
afterEach(async () => {
  await relay?.stop();
  relay = undefined;
});

describe("the inspector relay", () => {
  test("a browser that connects after a 4 x 64 system ran is told of all 260 actors as they are now, and of no session it was not told of", async () => {
    relay = await startInspectorRelay({ port: 0 });
    const early = await browser(relay.wsUrl);
    const system = await startSystem({ layers: ["a", "b", "c", "d"].map((id) => ({ id, seeds: 64 })), inspect: relay.wsUrl });
    try {
      for (const id of ["a", "b", "c", "d"]) await system.transition(id, 5, "GERMINATED");
      // Live: a browser that was there all along hears the same actors as they register.
      await early.until(() => early.registered().size >= 260);
      await early.until(() => early.received.filter((e) => e.type === "@xstate.snapshot" && e.snapshot?.value === "GERMINATED").length >= 4);
    } finally {
      await system.close();
    }
    early.close();
    const late = await browser(relay.wsUrl);
    try {
      await late.until(() => late.registered().size >= 260);
      expect(late.registered().size).toBe(260);
      const told = late.registered();
      expect(late.received.filter((e) => e.type !== "@xstate.actor").every((e) => told.has(e.sessionId))).toBe(true);
      const seed5 = late.received.filter((e) => e.type === "@xstate.actor" && e.name === "seed-5");
      expect(seed5.map((e) => e.snapshot?.value)).toEqual(["GERMINATED", "GERMINATED", "GERMINATED", "GERMINATED"]);
      expect(relay.stats().actors).toBe(260);
    } finally {
      late.close();
    }
  }, 30_000);

  test("serves the page that embeds Stately's inspector and connects it to the relay", async () => {
    relay = await startInspectorRelay({ port: 0 });
    const response = await fetch(relay.pageUrl);
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain('src="https://stately.ai/inspect"');
    expect(html).toContain(JSON.stringify(relay.wsUrl));
  });

  test("ignores what is not an inspection event instead of passing it on", async () => {
    relay = await startInspectorRelay({ port: 0 });
    const receiving = await browser(relay.wsUrl);
    const sender = new WebSocket(relay.wsUrl);
    await new Promise((resolve) => sender.once("open", resolve));
    sender.send("not json");
    sender.send(JSON.stringify({ hello: 1 }));
    sender.send(JSON.stringify({ type: "@xstate.event", sessionId: "s1", event: { type: "x" } }));
    await receiving.until(() => receiving.received.length >= 1);
    expect(receiving.received).toEqual([{ type: "@xstate.event", sessionId: "s1", event: { type: "x" } }]);
    expect(relay.stats().relayed).toBe(1);
    sender.close();
    receiving.close();
  });
});

describe("esper inspect", () => {
  test("prints the relay and the page to open, relays, and stops on Ctrl-C with a summary", async () => {
    const running = esperRunning(["inspect", "--port", "0"]);
    let url = "";
    await running.until("the relay's address", (out) => {
      url = /relay: (ws:\/\/\S+)/.exec(out)?.[1] ?? "";
      return url !== "" && /open http:\/\/127\.0\.0\.1:\d+ in a browser/.test(out);
    });
    const system = await startSystem({ layers: [{ id: "L", seeds: 3 }], inspect: url });
    await system.transition("L", 1, "GERMINATED");
    await system.close();
    const late = await browser(url);
    await late.until(() => late.registered().size >= 4);
    late.close();
    const done = await running.stop();
    expect(done.code).toBe(0);
    expect(done.stderr).toMatch(/relayed \d+ event\(s\) from 4 actor\(s\); stopped/);
  }, 30_000);

  test("a port that is taken: says so and what to do, exit 1", async () => {
    relay = await startInspectorRelay({ port: 0 });
    const port = new URL(relay.pageUrl).port;
    const done = await esper(["inspect", "--port", port]);
    expect(done.code).toBe(1);
    expect(done.stderr).toMatch(new RegExp(`esper inspect: port ${port} on 127\\.0\\.0\\.1 is taken; choose another with --port`));
  }, 30_000);
});
