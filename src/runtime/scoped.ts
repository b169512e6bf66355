/**
 * Scoped Effects for Promise code. Everything esper opens (a system, a Redis bus, a client,
 * Tamiyo) is acquired in an Effect Scope; its Promise form runs the Effect in a Scope of its
 * own and hands back `close()`, which closes that Scope and so releases what was acquired, in
 * reverse order, exactly as an Effect caller's Scope would.
 */
import { Cause, Effect, Exit, Scope } from "effect";

/** What a scoped Effect made, with the Scope that holds its resources closed by `close()`. */
export interface Closeable {
  /** Releases everything it acquired; later calls resolve at once. */
  readonly close: () => Promise<void>;
  readonly [Symbol.asyncDispose]: () => Promise<void>;
}

/**
 * Runs `effect` in a fresh Scope and resolves with its value plus `close`. When the effect
 * fails, whatever it had acquired is released and the promise rejects with the failure itself
 * (the tagged error, not a wrapper), so `instanceof` and `_tag` checks work.
 */
export const openScoped = async <A extends object, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<A & Closeable> => {
  const scope = Scope.makeUnsafe();
  const exit = await Effect.runPromiseExit(Scope.provide(effect, scope));
  if (Exit.isFailure(exit)) {
    await Effect.runPromise(Scope.close(scope, exit));
    throw Cause.squash(exit.cause);
  }
  let closing: Promise<void> | undefined;
  const close = () => (closing ??= Effect.runPromise(Scope.close(scope, Exit.void)));
  return Object.assign(exit.value, { close, [Symbol.asyncDispose]: close });
};
