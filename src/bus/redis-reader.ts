import { Effect, type Scope } from "effect";
import type { Redis } from "ioredis";
import { BusError, DEFAULT_BLOCK_MS, DEFAULT_READ_COUNT, oversizeStub, type Entry, type Reader, type ReaderOptions } from "./bus.ts";
import { ensureConnected, openConnection } from "./redis-connection.ts";
import type { RedisGuard } from "./redis-guard.ts";
import type { ResolvedRedisBusOptions } from "./redis-options.ts";
import { firstStreamEntries, scriptEntries, toEntries } from "./redis-replies.ts";
import { READ_GROUP, runScript, SCRIPT_RELOADED } from "./redis-scripts.ts";

export interface ReaderDeps {
  readonly options: ResolvedRedisBusOptions;
  readonly guard: RedisGuard;
  readonly ensureGroup: (stream: string, group: string, startId: "0" | "$") => Effect.Effect<void, BusError>;
}

export const isNoGroup = (error: BusError): boolean => error.reason === "command_failed" && error.message.includes("NOGROUP");

/**
 * A consumer-group member with its own connection, since a blocking XREADGROUP holds one.
 *
 * It first reads back what this consumer already holds pending (from id 0): entries delivered
 * before a crash, or whose reply was lost when the connection dropped. Whenever its connection
 * is replaced (Redis restarted, a read timed out or was interrupted) it drains again before
 * reading new entries, so nothing delivered to it is left behind.
 *
 * A reader with limits (`maxEntryBytes`, `maxBatchBytes`) reads through the READ_GROUP script,
 * which leaves an entry over `maxEntryBytes` on the server and hands back a stub. Only when
 * nothing is waiting does it block, with a plain XREADGROUP for ONE entry: the one entry that may
 * arrive over the limit while it waits is the most a hostile writer can make it hold. A reader
 * without limits reads new entries with a plain XREADGROUP. A fenced reader (a layer's owner)
 * always reads through the script, which checks its lease, and waits with a plain XREAD.
 */
export const makeRedisReader = (deps: ReaderDeps, reader: ReaderOptions): Effect.Effect<Reader, BusError, Scope.Scope> =>
  Effect.gen(function* () {
    const { options, guard } = deps;
    const { stream, group, consumer } = reader;
    const count = reader.count ?? DEFAULT_READ_COUNT;
    const blockMs = reader.blockMs ?? DEFAULT_BLOCK_MS;
    const maxBytes = reader.maxEntryBytes ?? Number.POSITIVE_INFINITY;
    const budget = reader.maxBatchBytes ?? Number.POSITIVE_INFINITY;
    const role = `reader:${consumer}`;

    yield* deps.ensureGroup(stream, group, "0");
    // Released with disconnect, not QUIT: QUIT would wait for a blocked read to time out.
    const conn: Redis = yield* Effect.acquireRelease(openConnection(options, role), (redis) => Effect.sync(() => redis.disconnect()));
    const state = { draining: true, cursor: "0", closed: false };
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        state.closed = true;
      }),
    );

    const fence = reader.fence;
    const scriptRead = (from: string): Effect.Effect<{ readonly last: string; readonly entries: Entry[]; readonly newest: string }, BusError> => {
      const limits = [String(maxBytes === Number.POSITIVE_INFINITY ? -1 : maxBytes), String(budget === Number.POSITIVE_INFINITY ? -1 : budget)];
      const attempt = guard.run(`XREADGROUP ${stream} ${group} ${consumer}`, () =>
        fence === undefined
          ? runScript(conn, READ_GROUP, [stream], [group, consumer, String(count), from, ...limits])
          : runScript(conn, READ_GROUP, [stream, fence.key], [group, consumer, String(count), from, ...limits, fence.owner]),
      );
      return attempt.pipe(
        Effect.catchIf((e) => e.cause === SCRIPT_RELOADED, () => attempt),
        Effect.flatMap((reply) => {
          const [last, rows, newest] = reply as [Buffer, unknown, Buffer | undefined];
          const head = last.toString("latin1");
          if (head === "!fenced") {
            const owner = Buffer.isBuffer(rows) ? rows.toString("utf8") : "";
            return Effect.fail(new BusError({ reason: "conflict", key: fence!.key, message: `${consumer} reads ${stream} no more: the lease ${fence!.key} is held by ${owner || "nobody"} now` }));
          }
          return Effect.succeed({ last: head, entries: scriptEntries(stream, rows as unknown[]), newest: newest?.toString("latin1") ?? "0-0" });
        }),
      );
    };

    /**
     * A fenced reader's wait: a plain XREAD after the newest entry, which delivers nothing to the
     * group (a blocking XREADGROUP would hand what arrives to this consumer even after its lease
     * ran out), then the fenced read of what came.
     */
    const waitThenRead = (after: string): Effect.Effect<readonly Entry[], BusError> =>
      guard
        .run(`XREAD BLOCK ${stream}`, () => conn.xreadBuffer("COUNT", 1, "BLOCK", blockMs, "STREAMS", stream, after), { timeoutMs: blockMs + options.callTimeoutMs })
        .pipe(Effect.flatMap((woken) => (woken === null ? Effect.succeed([] as readonly Entry[]) : Effect.map(scriptRead(">"), (fresh) => fresh.entries))));

    /** Waits up to blockMs for one new entry; measured here, so the stub is made on this side. */
    const blockForOne: Effect.Effect<readonly Entry[], BusError> = guard
      .run(`XREADGROUP BLOCK ${stream} ${group} ${consumer}`, () => conn.xreadgroupBuffer("GROUP", group, consumer, "COUNT", 1, "BLOCK", blockMs, "STREAMS", stream, ">"), {
        timeoutMs: blockMs + options.callTimeoutMs,
      })
      .pipe(
        Effect.map((reply) => {
          const raw = firstStreamEntries(reply);
          if (maxBytes === Number.POSITIVE_INFINITY) return toEntries(stream, raw, 1);
          // Measured on the raw reply: an oversize entry is never turned into strings.
          return raw.flatMap(([id, fields]) => {
            if (fields === null) return [];
            const bytes = fields.reduce((n, b) => n + b.byteLength, 0);
            if (bytes <= maxBytes) return toEntries(stream, [[id, fields]], 1);
            const type = fields.findIndex((b, i) => i % 2 === 0 && b.toString("latin1") === "type");
            const typeValue = type >= 0 && fields[type + 1]!.byteLength <= 64 ? fields[type + 1]!.toString("utf8") : "";
            return [{ stream, id: id.toString("latin1"), deliveries: 1, ...oversizeStub({ data: new Uint8Array(0), type: typeValue }, bytes) }];
          });
        }),
      );

    /**
     * New entries for a reader that asked for no limits (Tamiyo's telemetry reader): one
     * XREADGROUP of up to `count`, blocking up to blockMs. Going through the script instead made
     * Redis copy every entry into Lua and back (a quarter less telemetry read per second).
     */
    const unlimited = maxBytes === Number.POSITIVE_INFINITY && budget === Number.POSITIVE_INFINITY;
    const plainRead: Effect.Effect<readonly Entry[], BusError> = guard
      .run(
        `XREADGROUP ${stream} ${group} ${consumer}`,
        () =>
          blockMs > 0
            ? conn.xreadgroupBuffer("GROUP", group, consumer, "COUNT", count, "BLOCK", blockMs, "STREAMS", stream, ">")
            : conn.xreadgroupBuffer("GROUP", group, consumer, "COUNT", count, "STREAMS", stream, ">"),
        { timeoutMs: blockMs > 0 ? blockMs + options.callTimeoutMs : options.callTimeoutMs },
      )
      .pipe(Effect.map((reply) => toEntries(stream, firstStreamEntries(reply), 1)));

    const readOnce: Effect.Effect<readonly Entry[], BusError> = Effect.gen(function* () {
      if (state.closed) return yield* new BusError({ reason: "closed", message: `reader ${consumer} on ${stream} is closed` });
      if (yield* ensureConnected(conn, options, role)) {
        state.draining = true;
        state.cursor = "0";
      }
      while (state.draining) {
        const held = yield* scriptRead(state.cursor);
        if (held.last === "") {
          state.draining = false;
          break;
        }
        state.cursor = held.last;
        if (held.entries.length > 0) return held.entries;
      }
      // Without limits there is nothing to measure on the server: a plain read, blocking for a whole batch.
      if (unlimited && fence === undefined) return yield* plainRead;
      const fresh = yield* scriptRead(">");
      if (fresh.entries.length > 0 || blockMs <= 0) return fresh.entries;
      return yield* fence === undefined ? blockForOne : waitThenRead(fresh.newest);
    });

    const dropConnection = Effect.sync(() => conn.disconnect());
    const recreate = reader.recreateGroup ?? true;
    const read = readOnce.pipe(
      // The group is gone when Redis restarted without its data: recreate it over what the stream holds,
      // unless the owner wants to decide (the bridge checks whether the layer's data survived).
      Effect.catchIf(
        (e) => recreate && isNoGroup(e),
        () => Effect.andThen(deps.ensureGroup(stream, group, "0"), readOnce),
      ),
      // A connection that failed or was cut mid-read may be stale; the next read reconnects and drains.
      Effect.tapError((e) => (e.reason === "unavailable" ? dropConnection : Effect.void)),
      Effect.onInterrupt(() => dropConnection),
    );
    return { read };
  });
