import { Clock, Effect, Exit, Scope } from "effect";
import { TestClock } from "effect/testing";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import { busConformance } from "./bus-conformance.ts";

busConformance("MemoryBus", async () => {
  // The bus reads time from Effect's Clock: idle times and block times move by hand, no sleeping.
  const scope = await Effect.runPromise(Scope.make());
  const clock = await Effect.runPromise(Scope.provide(scope)(TestClock.make()));
  await Effect.runPromise(clock.setTime(1_700_000_000_000));
  return {
    bus: new MemoryBus(),
    provide: (effect) => Effect.provideService(effect, Clock.Clock, clock),
    letIdle: (ms) => Effect.runPromise(clock.adjust(ms)),
    now: () => clock.currentTimeMillisUnsafe(),
    idleMs: 60_000,
    key: (name) => `t.${name}`,
    close: () => Effect.runPromise(Scope.close(scope, Exit.void)),
  };
});
