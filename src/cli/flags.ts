/**
 * The flags every Redis-facing command declares, and the usage error. Kept apart from
 * connection.ts, which connects, so that declaring the commands (all `--help` needs) loads no
 * Redis, Effect or protocol code.
 */
import type { Command } from "commander";
import type { Codec } from "../protocol/codec.ts";
import type { Topology } from "../protocol/streams.ts";

/** The flags every Redis-facing command takes. */
export const withConnection = (command: Command): Command =>
  command
    .option("--redis <url>", "Redis to use (default: REDIS_URL, else redis://127.0.0.1:6379)")
    .option("--namespace <P>", "key namespace (default: ESPER_NAMESPACE, else morphogenetic)")
    .option("--topology <t>", "esper or reference: the reference implementation's stream names and acknowledgements (default: ESPER_TOPOLOGY, else esper)")
    .option("--codec <codec>", "msgpack or json (json speaks the reference implementation's format; default msgpack, under --topology reference the reference's plain JSON)")
    .option("--hmac-key-file <file>", "sign and check entries with the key in this file (at least 16 characters)");

export interface ConnectionFlags {
  readonly redis?: string;
  readonly namespace?: string;
  readonly topology?: string;
  readonly codec?: string;
  readonly hmacKeyFile?: string;
}

export interface Connection {
  readonly url: string;
  readonly namespace: string;
  readonly topology: Topology;
  readonly codec: Codec;
  readonly hmacKey?: string;
}

/** A command line that cannot run as given: said with what to do, exit 2. */
export class UsageError extends Error {}
