/**
 * The raw baseline of command-rtt, no esper code: a consumer-group echo over bare ioredis.
 * Reads `request` in group `echo` (XREADGROUP BLOCK), appends each entry's fields to `reply`
 * and acks it, one pipeline per batch read. Prints `ready` once the group exists; runs until
 * killed.  Usage: raw-echo.ts REDIS_URL REQUEST_STREAM REPLY_STREAM
 */
import { Redis } from "ioredis";

const [url, request, reply] = process.argv.slice(2) as [string, string, string];
const redis = new Redis(url);
await redis.xgroup("CREATE", request, "echo", "$", "MKSTREAM").catch((e: Error) => {
  if (!e.message.includes("BUSYGROUP")) throw e;
});
process.stdout.write("ready\n");
process.on("SIGTERM", () => {
  redis.disconnect();
  process.exit(0);
});
for (;;) {
  const got = (await redis.xreadgroupBuffer("GROUP", "echo", "echo-1", "COUNT", 256, "BLOCK", 1000, "STREAMS", request, ">")) as [Buffer, [Buffer, Buffer[]][]][] | null;
  if (!got) continue;
  const entries = got[0]![1];
  const pipeline = redis.pipeline();
  for (const [, fields] of entries) pipeline.xadd(reply, "MAXLEN", "~", "100000", "*", ...fields);
  pipeline.xack(request, "echo", ...entries.map(([id]) => id));
  await pipeline.exec();
}
