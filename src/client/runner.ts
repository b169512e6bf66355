import { Effect, type Context, type Fiber } from "effect";

/**
 * How the client runs its Effects from Promise code: with the services of the Scope that made it
 * (its Clock above all, so a TestClock drives its deadlines and the bus calls it makes).
 */
export interface Runner {
  readonly promise: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>;
  readonly fork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>;
}

export const runnerOf = (context: Context.Context<never>): Runner => ({
  promise: (effect) => Effect.runPromiseWith(context)(effect),
  fork: (effect) => Effect.runForkWith(context)(effect),
});
