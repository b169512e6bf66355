import { Effect, type Scope } from "effect";
import type { Redis } from "ioredis";
import { BusError, DEFAULT_BLOCK_MS, DEFAULT_READ_COUNT, type Entry, type Reader, type ReaderOptions } from "./bus.ts";
import { ensureConnected, openConnection } from "./redis-connection.ts";
import type { RedisGuard } from "./redis-guard.ts";
import type { ResolvedRedisBusOptions } from "./redis-options.ts";
import { firstStreamEntries, goneIds, toEntries, type PendingRow, type RawEntry } from "./redis-replies.ts";

export interface ReaderDeps {
  readonly options: ResolvedRedisBusOptions;
  readonly guard: RedisGuard;
  readonly ensureGroup: (stream: string, group: string, startId: "0" | "$") => Effect.Effect<void, BusError>;
}

const isNoGroup = (error: BusError) => error.reason === "command_failed" && error.message.includes("NOGROUP");

/**
 * A consumer-group member with its own connection, since a blocking XREADGROUP holds one.
 *
 * It first reads back what this consumer already holds pending (XREADGROUP from id 0): entries
 * delivered before a crash, or whose reply was lost when the connection dropped. Whenever its
 * connection is replaced (Redis restarted, a read timed out or was interrupted) it drains again
 * before reading new entries (`>`), so nothing delivered to it is left behind.
 */
export const makeRedisReader = (deps: ReaderDeps, reader: ReaderOptions): Effect.Effect<Reader, BusError, Scope.Scope> =>
  Effect.gen(function* () {
    const { options, guard } = deps;
    const { stream, group, consumer } = reader;
    const count = reader.count ?? DEFAULT_READ_COUNT;
    const blockMs = reader.blockMs ?? DEFAULT_BLOCK_MS;
    const role = `reader:${consumer}`;

    yield* deps.ensureGroup(stream, group, "0");
    // Released with disconnect, not QUIT: QUIT would wait for a blocked read to time out.
    const conn: Redis = yield* Effect.acquireRelease(openConnection(options, role), (redis) =>
      Effect.sync(() => redis.disconnect()),
    );
    const state = { draining: true, cursor: "0", closed: false };
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        state.closed = true;
      }),
    );

    const xreadgroup = (id: string, block: boolean): Effect.Effect<RawEntry[], BusError> =>
      guard
        .run(
          `XREADGROUP ${stream} ${group} ${consumer}`,
          () =>
            block
              ? conn.xreadgroupBuffer("GROUP", group, consumer, "COUNT", count, "BLOCK", blockMs, "STREAMS", stream, id)
              : conn.xreadgroupBuffer("GROUP", group, consumer, "COUNT", count, "STREAMS", stream, id),
          { timeoutMs: block ? blockMs + options.callTimeoutMs : options.callTimeoutMs },
        )
        .pipe(Effect.map(firstStreamEntries));

    /** The next batch of this consumer's own pending entries, or undefined once there are none left. */
    const drainOnce: Effect.Effect<Entry[] | undefined, BusError> = Effect.gen(function* () {
      while (true) {
        const raw = yield* xreadgroup(state.cursor, false);
        if (raw.length === 0) return undefined;
        state.cursor = raw[raw.length - 1]![0].toString("latin1");
        const gone = goneIds(raw);
        // Trimmed while pending: there is nothing left to process, so it leaves the pending list.
        if (gone.length > 0) yield* guard.run(`XACK ${stream}`, () => conn.xack(stream, group, ...gone));
        const entries = toEntries(stream, raw, 0);
        if (entries.length === 0) continue;
        const rows = (yield* guard.run(`XPENDING ${stream}`, () =>
          conn.xpending(stream, group, entries[0]!.id, entries[entries.length - 1]!.id, entries.length, consumer),
        )) as PendingRow[];
        const deliveries = new Map(rows.map(([id, , , n]) => [id, Number(n)]));
        return entries.map((e) => ({ ...e, deliveries: deliveries.get(e.id) ?? 1 }));
      }
    });

    const readOnce: Effect.Effect<readonly Entry[], BusError> = Effect.gen(function* () {
      if (state.closed) {
        return yield* new BusError({ reason: "closed", message: `reader ${consumer} on ${stream} is closed` });
      }
      if (yield* ensureConnected(conn, options, role)) {
        state.draining = true;
        state.cursor = "0";
      }
      if (state.draining) {
        const held = yield* drainOnce;
        if (held !== undefined) return held;
        state.draining = false;
      }
      return toEntries(stream, yield* xreadgroup(">", blockMs > 0), 1);
    });

    const dropConnection = Effect.sync(() => conn.disconnect());
    const read = readOnce.pipe(
      // The group is gone when Redis restarted without its data: recreate it over what the stream holds.
      Effect.catchIf(isNoGroup, () => Effect.andThen(deps.ensureGroup(stream, group, "0"), readOnce)),
      // A connection that failed or was cut mid-read may be stale; the next read reconnects and drains.
      Effect.tapError((e) => (e.reason === "unavailable" ? dropConnection : Effect.void)),
      Effect.onInterrupt(() => dropConnection),
    );
    return { read };
  });
