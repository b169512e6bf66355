import { Command, type Redis } from "ioredis";
import { fastPaths } from "../protocol/fast/switch.ts";
import type { EntryFields } from "./bus.ts";
import { xaddArgs } from "./redis-replies.ts";

/**
 * XADDs whose large values go to the socket as they are, not copied: a fast path (it overrides
 * ioredis's Command.toWritable), so it obeys the fast-path switch (protocol/fast/switch.ts).
 *
 * ioredis copies every Buffer argument into one fresh buffer per command, and a pipeline copies
 * all of its commands once more into one buffer. For telemetry entries (~120 KB each, 64 to a
 * write) that is two fresh allocations of the whole payload per write: measured, ~20% of the
 * publisher's CPU, most of it page faults on fresh memory rather than the copying itself.
 * Here the RESP framing is written around each large value, and the socket, corked for the
 * batch, sends the lot with one writev that points at the callers' buffers.
 *
 * What it is worth end to end (bench/telemetry-throughput.ts, 2-core dev box, on and off
 * alternated): 10-14% of records/s (full runs: medians 633k and 612k records/s on, 512k and 582k
 * off; 36 paired rounds in one run: median ratio 1.14, geometric mean 1.10). Below ~10% it would
 * not pay for overriding an ioredis internal.
 */

/** A Buffer value at least this large is written in place; smaller ones are cheaper to copy. */
export const ZERO_COPY_MIN_BYTES = 16 * 1024;

interface Socket {
  write(chunk: Buffer | string): boolean;
  cork(): void;
  uncork(): void;
}

/**
 * An XADD that writes its own framing. ioredis calls toWritable with the connection's socket and
 * writes what it returns right after, in the same tick, so the parts written here come first and
 * in order. Only for a connection's own queue, never inside a pipeline or MULTI, whose writes
 * ioredis collects and sends later.
 */
class ZeroCopyXadd extends Command {
  constructor(args: readonly (Buffer | string)[]) {
    super("xadd", [...args], { replyEncoding: "utf8" });
  }

  override toWritable(socket: object): string {
    const out = socket as Socket;
    const args = this.args as (Buffer | string)[];
    let head = `*${args.length + 1}\r\n$4\r\nxadd\r\n`;
    for (const arg of args) {
      if (typeof arg === "string") {
        head += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`;
        continue;
      }
      out.write(`${head}$${arg.length}\r\n`);
      out.write(arg);
      head = "\r\n";
    }
    return head;
  }
}

const hasLargeValue = (fields: EntryFields): boolean => {
  for (const name in fields) {
    const v = (fields as Readonly<Record<string, Uint8Array | string>>)[name]!;
    if (typeof v !== "string" && v.byteLength >= ZERO_COPY_MIN_BYTES) return true;
  }
  return false;
};

/** Whether a batch goes out this way: it holds a large value, and fast paths are on (else ioredis's own pipeline). */
export const takesZeroCopy = (items: readonly { readonly fields: EntryFields }[]): boolean => fastPaths() && items.some((item) => hasLargeValue(item.fields));

/**
 * XADDs of `items` on `redis`'s own queue, in order, each settled as a pipeline reply would be:
 * `[error, id]`. The socket is corked around the batch, so it leaves in one write.
 */
export const zeroCopyXadds = (
  redis: Redis,
  items: readonly { readonly stream: string; readonly fields: EntryFields; readonly maxLen: number | null }[],
): Promise<[Error | null, string | null][]> => {
  const socket = redis.stream as unknown as Socket | undefined;
  socket?.cork();
  try {
    return Promise.all(
      items.map((item) => {
        const command = new ZeroCopyXadd([item.stream, ...xaddArgs(item.fields, item.maxLen)]);
        redis.sendCommand(command);
        return (command.promise as Promise<unknown>).then(
          (id): [null, string] => [null, String(id)],
          (error: unknown): [Error, null] => [error instanceof Error ? error : new Error(String(error)), null],
        );
      }),
    );
  } finally {
    socket?.uncork();
  }
};
