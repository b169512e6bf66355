import { Effect, Exit, Scope } from "effect";

/** Runs `effect` in a fresh Scope for Promise-based benchmark code; `close` releases it. */
export const openScoped = async <A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<{ readonly value: A; readonly close: () => Promise<void> }> => {
  const scope = await Effect.runPromise(Scope.make());
  const exit = await Effect.runPromiseExit(Scope.provide(scope)(effect));
  if (Exit.isFailure(exit)) {
    await Effect.runPromise(Scope.close(scope, exit));
    return Effect.runPromise(Effect.failCause(exit.cause));
  }
  return { value: exit.value, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) };
};

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
