/**
 * What the black-box tests know of esper: only the wire (docs/protocol.md). They write entries with
 * raw ioredis and msgpackr, as a Python trainer or an operator's script would, read the event
 * and dead-letter streams back the same way, and run `esper worker` as a child process
 * (test/support/worker-process.ts). Nothing here imports esper's own code, so these tests ran
 * unchanged against the esper they found faults in.
 */
import { createHmac, randomUUID } from "node:crypto";
import { Packr } from "msgpackr";
import type { Redis } from "ioredis";

const packr = new Packr({ useRecords: false, mapsAsObjects: true, encodeUndefinedAsNil: true, variableMapSize: true });

export const pack = (value: unknown): Buffer => packr.pack(value);
export const unpack = (bytes: Buffer): Record<string, unknown> => packr.unpack(bytes) as Record<string, unknown>;

export const keysOf = (namespace: string, layer: string) => ({
  control: `${namespace}.control.layer.{${layer}}`,
  events: `${namespace}.event.layer.{${layer}}`,
  telemetry: `${namespace}.telemetry.layer.{${layer}}`,
  dlq: `${namespace}.dlq.layer.{${layer}}`,
  state: `${namespace}.state.layer.{${layer}}`,
  controlAll: `${namespace}.control.all`,
});

const envelope = (type: string, extra: Record<string, unknown> = {}) => ({
  message_type: type,
  message_id: randomUUID(),
  timestamp: Date.now() / 1000,
  source: "outside",
  version: "1.0",
  ...extra,
});

export const lifecycle = (layer: string, seed: number | null, target: string, extra: Record<string, unknown> = {}) =>
  envelope("LifecycleTransitionCommand", { layer_id: layer, seed_id: seed, target_state: target, parameters: {}, priority: "normal", timeout_ms: 600_000, force: true, reason: "", ...extra });

export const emergencyStop = (layer: string | null, extra: Record<string, unknown> = {}) =>
  envelope("EmergencyStopCommand", { layer_id: layer, seed_id: null, reason: "outside stop", priority: "critical", timeout_ms: 1_000, ...extra });

export const resume = (layer: string) => envelope("ResumeCommand", { layer_id: layer, reason: "outside resume", priority: "high", timeout_ms: 1_000 });

export type Message = ReturnType<typeof envelope> & Record<string, unknown>;

/** The fields of an entry carrying `message` as msgpack, signed when a key is given (docs/protocol.md "Stream entries"). */
export const entryFields = (stream: string, message: { readonly message_type: string }, key?: string): (string | Buffer)[] => {
  const data = pack(message);
  const fields: (string | Buffer)[] = ["data", data, "type", message.message_type, "enc", "msgpack"];
  if (key !== undefined) fields.push("sig", createHmac("sha256", key).update(`${stream}\n${message.message_type}\n`, "utf8").update(data).digest("hex"));
  return fields;
};

export const xadd = (redis: Redis, stream: string, message: { readonly message_type: string }, key?: string): Promise<string | null> =>
  redis.xadd(stream, "*", ...entryFields(stream, message, key));

/** Many entries in pipelines of 1,000. */
export const xaddMany = async (redis: Redis, stream: string, messages: readonly { readonly message_type: string }[]): Promise<void> => {
  for (let i = 0; i < messages.length; i += 1_000) {
    const pipeline = redis.pipeline();
    for (const m of messages.slice(i, i + 1_000)) pipeline.xadd(stream, "*", ...entryFields(stream, m));
    await pipeline.exec();
  }
};

export interface Read {
  readonly id: string;
  readonly fields: Record<string, Buffer>;
  readonly message: Record<string, unknown> | undefined;
}

/** Every entry of a stream, oldest first, with its message when it is msgpack. */
export const readAll = async (redis: Redis, stream: string): Promise<Read[]> => {
  const out: Read[] = [];
  let from = "-";
  for (;;) {
    const page = await redis.xrangeBuffer(stream, from, "+", "COUNT", 10_000);
    for (const [id, flat] of page) {
      const fields: Record<string, Buffer> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!.toString()] = flat[i + 1]!;
      let message: Record<string, unknown> | undefined;
      try {
        message = fields.enc?.toString() === "msgpack" ? unpack(fields.data!) : undefined;
      } catch {
        message = undefined;
      }
      out.push({ id: id.toString(), fields, message });
    }
    if (page.length < 10_000) return out;
    from = `(${page[page.length - 1]![0].toString()}`;
  }
};

/** The CommandResults on a layer's event stream, in order. */
export const results = async (redis: Redis, events: string) =>
  (await readAll(redis, events)).flatMap((r) => (r.message?.message_type === "CommandResult" ? [r.message as Record<string, unknown> & { correlation_id: string; code: string }] : []));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls a positive condition until it holds; fails with `what` after `timeoutMs`. */
export const until = async <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000, pollMs = 50): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await probe();
    if (got !== undefined && got !== false) return got;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(pollMs);
  }
};

/** The result for one command, once it is on the event stream. */
export const resultOf = (redis: Redis, events: string, messageId: string, timeoutMs = 30_000) =>
  until(`the CommandResult of ${messageId}`, async () => (await results(redis, events)).find((r) => r.correlation_id === messageId), timeoutMs);
