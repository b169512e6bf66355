/**
 * What every Redis-facing subcommand shares: the common flags, and running an Effect program
 * in a Scope that SIGTERM/SIGINT close gracefully (in-flight work finishes, acks, connections close).
 */
import { readFileSync } from "node:fs";
import { Cause, Effect, Exit, Fiber, type Scope } from "effect";
import { isCodec, type Codec } from "../protocol/codec.ts";
import { namespaceFromEnv } from "../protocol/streams.ts";

export const CONNECTION_OPTIONS = {
  redis: { type: "string" },
  namespace: { type: "string" },
  codec: { type: "string" },
  "hmac-key-file": { type: "string" },
} as const;

export interface Connection {
  readonly url: string;
  readonly namespace: string;
  readonly codec: Codec;
  readonly hmacKey?: string;
}

export class UsageError extends Error {}

export const connectionFrom = (values: { redis?: string; namespace?: string; codec?: string; "hmac-key-file"?: string }): Connection => {
  const url = values.redis ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const namespace = values.namespace ?? namespaceFromEnv();
  const codec = values.codec ?? "msgpack";
  if (!isCodec(codec)) throw new UsageError(`--codec ${codec}: use msgpack or json`);
  const keyFile = values["hmac-key-file"];
  const hmacKey = keyFile === undefined ? undefined : readFileSync(keyFile, "utf8").trim();
  if (hmacKey !== undefined && hmacKey.length < 16) throw new UsageError(`--hmac-key-file ${keyFile}: the key must be at least 16 characters`);
  return { url, namespace, codec, ...(hmacKey !== undefined ? { hmacKey } : {}) };
};

/** Runs `program` until it ends or a signal arrives; the Scope closes either way. Returns the exit code. */
export const runUntilSignal = async (program: Effect.Effect<number, unknown, Scope.Scope>): Promise<number> => {
  const fiber = Effect.runFork(Effect.scoped(program));
  const stop = () => {
    void Effect.runPromise(Fiber.interrupt(fiber));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  const exit = await Effect.runPromise(Fiber.await(fiber));
  process.off("SIGTERM", stop);
  process.off("SIGINT", stop);
  if (Exit.isSuccess(exit)) return exit.value;
  if (Cause.hasInterruptsOnly(exit.cause)) return 0;
  const error = Cause.squash(exit.cause);
  console.error(error instanceof Error ? error.message : String(error));
  return 1;
};
