import { MemoryBus } from "../../src/bus/memory-bus.ts";
import { busConformance } from "./bus-conformance.ts";

busConformance("MemoryBus", async () => {
  // Idle time is moved by hand: claims and the janitor are tested without sleeping.
  let now = Date.now();
  return {
    bus: new MemoryBus({ now: () => now }),
    letIdle: async (ms) => {
      now += ms;
    },
    idleMs: 60_000,
    key: (name) => `t.${name}`,
    close: async () => {},
  };
});
