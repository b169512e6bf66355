import { Effect } from "effect";
import { expect, test } from "vitest";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import { xaddArgs } from "../../src/bus/redis-replies.ts";

// Control streams are published without MAXLEN (a backlog must not be trimmed away unread) and
// trimmed by what their groups are done with instead (trimDelivered, in the conformance suite).
const fields = { data: new Uint8Array([1]), type: "LifecycleTransitionCommand" };

test("MemoryBus: maxLen null never trims; no maxLen trims to the bus's default", async () => {
  const bus = new MemoryBus({ maxLen: 2 });
  for (let i = 0; i < 5; i++) await Effect.runPromise(bus.publish("s", fields, null));
  await Effect.runPromise(bus.publishMany([{ stream: "s", fields }], null));
  expect(await Effect.runPromise(bus.length("s"))).toBe(6);
  await Effect.runPromise(bus.publish("s", fields));
  expect(await Effect.runPromise(bus.length("s"))).toBe(2);
});

test("RedisBus: XADD carries MAXLEN ~ only when a bound is given", () => {
  expect(xaddArgs(fields, null).slice(0, 1)).toEqual(["*"]);
  expect(xaddArgs(fields, 100).slice(0, 4)).toEqual(["MAXLEN", "~", "100", "*"]);
});
