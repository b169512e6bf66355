import { Effect, Latch, Layer, type Scope } from "effect";
import {
  BusError,
  BusService,
  DEFAULT_PENDING_COUNT,
  DEFAULT_READ_COUNT,
  type Bus,
  type CommitOp,
  type Entry,
  type EntryFields,
  type GroupInfo,
  type PendingEntry,
} from "./bus.ts";
import { commitShapeError, effectiveOps } from "./commit.ts";
import { deadLetterOp } from "./dead-letters.ts";
import { Outbox, type Settled } from "./outbox.ts";
import { runCommit } from "./redis-commit.ts";
import { CLAIM, LEASE, runScript, SCAN_FOR, SCRIPT_RELOADED, TAKE_OVER, TRIM_DELIVERED, type Script } from "./redis-scripts.ts";
import { awaitStatus, closeConnection, makeBlockingPool, openConnection, reconnect } from "./redis-connection.ts";
import { makeGuard, toBusError } from "./redis-guard.ts";
import { resolveOptions, type RedisBusOptions } from "./redis-options.ts";
import { makeRedisReader } from "./redis-reader.ts";
import { firstStreamEntries, scriptEntries, toEntries, xaddArgs, type PendingRow, type RawEntry } from "./redis-replies.ts";
import { takesZeroCopy, zeroCopyXadds } from "./redis-zero-copy-xadd.ts";

/** How a RedisBus is coping with Redis, read from its `stats` Effect: what waits in its outbox, what was dropped, the breaker. */
export interface RedisBusStats {
  /** Whether the main connection is up now. */
  readonly connected: boolean;
  /** Commands and events waiting for Redis (including a batch being written). */
  readonly outbox: number;
  /** Telemetry entries waiting for Redis. */
  readonly outboxDroppable: number;
  /** Telemetry entries pushed out of the outbox by newer ones since the bus started. */
  readonly telemetryDropped: number;
  /** Times the main connection came back after dropping. */
  readonly reconnects: number;
  /**
   * The circuit breaker over Redis calls: "Closed" (calls go through), "Open" (after `breakerFailures` consecutive failures:
   * calls fail at once as `unavailable`, without reaching Redis), "HalfOpen" (a trial call decides).
   */
  readonly breaker: "Closed" | "Open" | "HalfOpen";
}

/** The bus over Redis Streams. `stats` shows how it is coping with Redis. */
export interface RedisBus extends Bus {
  readonly stats: Effect.Effect<RedisBusStats>;
}

interface Item {
  readonly stream: string;
  readonly fields: EntryFields;
  readonly maxLen: number | null;
  readonly index?: number;
}

const CLOSED = new BusError({ reason: "closed", message: "the bus closed before Redis came back; the entry was not written" });

/**
 * Opens the bus in the Scope: the main connection (commands, pipelines, commits), a pool of
 * connections for blocking XREADs, the reconnect supervisor and the outbox flusher. Each reader
 * opens its own connection in its own Scope. Closing the Scope stops the fibers, makes a last
 * attempt to write what the outbox holds, fails the publishers still waiting, then closes the
 * connections, in that order. Fails with `unavailable` when Redis cannot be reached at start.
 */
export const makeRedisBus = (input: RedisBusOptions = {}): Effect.Effect<RedisBus, BusError, Scope.Scope> =>
  Effect.gen(function* () {
    const options = resolveOptions(input);
    const guard = yield* makeGuard(options);
    const main = yield* Effect.acquireRelease(openConnection(options, "main"), closeConnection);
    const connected = Latch.makeUnsafe(main.status === "ready");
    main.on("ready", () => connected.openUnsafe());
    main.on("close", () => connected.closeUnsafe());
    const pool = yield* makeBlockingPool(options);
    const outbox = new Outbox(options.outboxLimit, options.droppableLimit);
    let reconnects = 0;

    /** Per item: its id, a BusError Redis answered with, or undefined when Redis was not reached. */
    const writeBatch = (items: readonly Item[]): Effect.Effect<Settled[]> =>
      guard
        .run(`XADD pipeline of ${items.length}`, () => {
          if (takesZeroCopy(items)) return zeroCopyXadds(main, items);
          const pipeline = main.pipeline();
          for (const item of items) pipeline.xadd(item.stream, ...xaddArgs(item.fields, item.maxLen));
          return pipeline.exec();
        })
        .pipe(
          Effect.map((replies) =>
            items.map((item, i): Settled => {
              const [error, id] = replies?.[i] ?? [new Error("no reply"), null];
              if (error === null || error === undefined) return String(id);
              const failure = toBusError(error, `XADD ${item.stream}`);
              return failure.reason === "unavailable" ? undefined : failure;
            }),
          ),
          Effect.catch((e) => Effect.succeed(items.map((): Settled => (e.reason === "unavailable" ? undefined : e)))),
        );

    const enqueue = (items: readonly Item[], ids: string[]): Effect.Effect<readonly string[], BusError> =>
      Effect.callback<readonly string[], BusError>((resume) => {
        const offers = items.map((item) => ({ ...item, droppable: options.isDroppable(item.stream) }));
        const ticket = outbox.offer(offers, ids, (outcome) =>
          resume(outcome instanceof BusError ? Effect.fail(outcome) : Effect.succeed(outcome)),
        );
        if (ticket instanceof BusError) resume(Effect.fail(ticket));
        else if (ticket === undefined) resume(Effect.succeed(ids));
      });

    /** Writes straight to Redis only when nothing waits before it, so order holds per stream. */
    const direct = () => outbox.isEmpty && main.status === "ready";

    const flushStep: Effect.Effect<void, BusError> = Effect.uninterruptible(
      Effect.gen(function* () {
        const batch = outbox.take(options.flushBatch);
        if (batch.length === 0) return;
        const outcomes = yield* writeBatch(batch);
        outbox.settle(batch, outcomes);
        if (outcomes.includes(undefined)) {
          return yield* new BusError({ reason: "unavailable", message: "outbox flush did not reach Redis" });
        }
      }),
    );
    const awaitWork = Effect.callback<void>((resume) => Effect.sync(outbox.onWork(() => resume(Effect.void))));
    const flushLoop = Effect.forever(
      awaitWork.pipe(
        Effect.andThen(Effect.andThen(connected.await, flushStep).pipe(Effect.retry({ schedule: options.reconnect }))),
        Effect.ignore,
      ),
    );
    const supervise = Effect.forever(
      awaitStatus(main, ["end"]).pipe(
        Effect.andThen(reconnect(main, options, "main")),
        Effect.tap(() =>
          Effect.sync(() => {
            reconnects++;
          }),
        ),
        Effect.ignore,
      ),
    );

    // Runs after the fibers below are stopped (finalizers run in reverse), before the connections close.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        while (!outbox.isEmpty && main.status === "ready") {
          const flushed = yield* Effect.exit(flushStep);
          if (flushed._tag === "Failure") break;
        }
        const lost = outbox.close(CLOSED);
        if (lost > 0) yield* Effect.logWarning(`RedisBus closed with ${lost} commands and events not written`);
      }),
    );
    yield* Effect.forkScoped(supervise);
    yield* Effect.forkScoped(flushLoop);

    const publishMany: Bus["publishMany"] = (entries, maxLen = options.maxLen) =>
      Effect.suspend(() => {
        const items = entries.map((e) => ({ stream: e.stream, fields: e.fields, maxLen }));
        if (items.length === 0) return Effect.succeed([]);
        if (!direct()) return enqueue(items, items.map(() => ""));
        return Effect.flatMap(writeBatch(items), (outcomes) => {
          const refused = outcomes.find((o): o is BusError => o instanceof BusError);
          if (refused !== undefined) return Effect.fail(refused);
          const ids = outcomes.map((o) => (typeof o === "string" ? o : ""));
          const unwritten = items.flatMap((item, index) => (outcomes[index] === undefined ? [{ ...item, index }] : []));
          return unwritten.length === 0 ? Effect.succeed(ids) : enqueue(unwritten, ids);
        });
      });

    const ensureGroup: Bus["ensureGroup"] = (stream, group, startId = "$") =>
      guard
        .run(`XGROUP CREATE ${stream} ${group}`, () => main.xgroup("CREATE", stream, group, startId, "MKSTREAM"), { retry: true })
        .pipe(
          Effect.asVoid,
          Effect.catchIf(
            (e) => e.message.includes("BUSYGROUP"),
            () => Effect.void,
          ),
        );

    /** A script on the main connection, run again at once when Redis had to load it first (nothing ran). */
    const script = (what: string, s: Script, keys: readonly string[], args: readonly string[]): Effect.Effect<unknown, BusError> => {
      const attempt = guard.run(what, () => runScript(main, s, keys, args));
      return attempt.pipe(Effect.catchIf((e) => e.cause === SCRIPT_RELOADED, () => attempt));
    };

    const commit = (ops: readonly CommitOp[]): Effect.Effect<readonly string[], BusError> =>
      Effect.suspend(() => {
        const invalid = commitShapeError(ops);
        if (invalid !== undefined) return Effect.fail(invalid);
        const effective = effectiveOps(ops);
        // Tried again here only when the attempt itself came back (never after a timeout): see runCommit.
        // (catchIf, not Effect.retry: a retry policy would be built for every commit.)
        const attempt = guard.run(`commit of ${effective.length} ops`, () => runCommit(main, effective, options.maxLen));
        return attempt.pipe(Effect.catchIf((e) => e.cause === SCRIPT_RELOADED, () => attempt));
      });

    return {
      inProcess: false,
      publish: (stream, fields, maxLen = options.maxLen) =>
        Effect.suspend(() => {
          if (!direct()) return Effect.map(enqueue([{ stream, fields, maxLen }], [""]), (ids) => ids[0]!);
          return guard.run(`XADD ${stream}`, () => main.xadd(stream, ...xaddArgs(fields, maxLen))).pipe(
            Effect.map(String),
            Effect.catchIf(
              (e) => e.reason === "unavailable",
              () => Effect.map(enqueue([{ stream, fields, maxLen }], [""]), (ids) => ids[0]!),
            ),
          );
        }),
      publishMany,
      ensureGroup,
      reader: (reader) => makeRedisReader({ options, guard, ensureGroup }, reader),
      ack: (stream, group, ids) =>
        ids.length === 0 ? Effect.succeed(0) : guard.run(`XACK ${stream}`, () => main.xack(stream, group, ...ids)),
      pending: (stream, group, count = DEFAULT_PENDING_COUNT) =>
        guard
          .run(`XPENDING ${stream} ${group}`, () => main.xpending(stream, group, "-", "+", count), { retry: true })
          .pipe(Effect.map((rows) => (rows as PendingRow[]).map(toPending))),
      claimIdle: (stream, group, consumer, minIdleMs, count = DEFAULT_READ_COUNT, maxEntryBytes = Number.POSITIVE_INFINITY) =>
        Effect.map(
          script(`XCLAIM ${stream}`, CLAIM, [stream], [group, consumer, String(minIdleMs), String(count), String(maxEntryBytes === Number.POSITIVE_INFINITY ? -1 : maxEntryBytes)]),
          (rows) => scriptEntries(stream, rows as unknown[]),
        ),
      lease: (request) =>
        Effect.map(script(`lease ${request.key}`, LEASE, [request.key, request.counter], [request.op, request.holder, String(request.ttlMs), String(request.token ?? 0)]), (reply) => {
          const [held, holder, token, ttlMs] = reply as [number, Buffer, Buffer, number];
          const who = holder.toString("utf8");
          return { held: held === 1, holder: who === "" ? null : who, token: Number(token.toString("latin1")), ttlMs: Number(ttlMs) };
        }),
      takeOver: (stream, group, consumer) => Effect.map(script(`XCLAIM JUSTID ${stream}`, TAKE_OVER, [stream], [group, consumer]), Number),
      scanFor: (stream, afterId, type, count, maxEntryBytes = Number.POSITIVE_INFINITY) =>
        Effect.map(script(`XRANGE ${stream}`, SCAN_FOR, [stream], [afterId, type, String(count), String(maxEntryBytes === Number.POSITIVE_INFINITY ? -1 : maxEntryBytes)]), (reply) => {
          const [last, rows] = reply as [Buffer, unknown[]];
          const lastId = last.toString("latin1");
          return { lastId: lastId === "" ? afterId : lastId, found: scriptEntries(stream, rows) };
        }),
      groupInfo: (stream, group) =>
        guard.run(`XINFO GROUPS ${stream}`, () => main.xinfo("GROUPS", stream), { retry: true }).pipe(
          Effect.map((rows) => groupInfoOf(rows as unknown[][], group)),
          // No such stream: no such group either.
          Effect.catchIf(
            (e) => e.reason === "command_failed" && /no such key/i.test(e.message),
            () => Effect.succeed(undefined),
          ),
        ),
      deadLetter: (letter) => Effect.clockWith((clock) => Effect.map(commit([deadLetterOp(letter, clock.currentTimeMillisUnsafe())]), (ids) => ids[0]!)),
      commit,
      range: (stream, start = "-", end = "+", count) =>
        guard
          .run(
            `XRANGE ${stream}`,
            () => (count === undefined ? main.xrangeBuffer(stream, start, end) : main.xrangeBuffer(stream, start, end, "COUNT", count)),
            { retry: true },
          )
          .pipe(Effect.map((raw) => toEntries(stream, raw as RawEntry[], 0))),
      readAfter: (stream, afterId, count = DEFAULT_READ_COUNT, blockMs = 0) =>
        (blockMs > 0
          ? pool.use((conn) =>
              guard.run(`XREAD BLOCK ${stream}`, () => conn.xreadBuffer("COUNT", count, "BLOCK", blockMs, "STREAMS", stream, afterId), {
                timeoutMs: blockMs + options.callTimeoutMs,
              }),
            )
          : guard.run(`XREAD ${stream}`, () => main.xreadBuffer("COUNT", count, "STREAMS", stream, afterId), { retry: true })
        ).pipe(Effect.map((reply) => toEntries(stream, firstStreamEntries(reply), 0))),
      lastId: (stream) =>
        guard
          .run(`XREVRANGE ${stream}`, () => main.xrevrangeBuffer(stream, "+", "-", "COUNT", 1), { retry: true })
          .pipe(Effect.map((raw) => (raw.length === 0 ? "0-0" : raw[0]![0].toString("latin1")))),
      streamInfo: (stream) =>
        guard
          .run(`XINFO STREAM ${stream}`, () => main.xinfo("STREAM", stream).catch((e: Error) => (/no such key/i.test(e.message) ? null : Promise.reject(e))), { retry: true })
          .pipe(
            Effect.map((reply) => {
              if (reply === null) return { entriesAdded: 0, lastGeneratedId: "0-0" };
              const fields = reply as unknown[];
              const field = (name: string) => fields[fields.indexOf(name) + 1];
              return { entriesAdded: Number(field("entries-added")), lastGeneratedId: String(field("last-generated-id")) };
            }),
          ),
      hgetall: (key) => guard.run(`HGETALL ${key}`, () => main.hgetallBuffer(key), { retry: true }),
      fencingToken: (counter) => Effect.map(guard.run(`GET ${counter}`, () => main.get(counter), { retry: true }), (value) => Number(value ?? 0) || 0),
      hmget: (key, fields) =>
        fields.length === 0
          ? Effect.succeed([])
          : guard.run(`HMGET ${key}`, () => main.hmgetBuffer(key, ...fields), { retry: true }),
      length: (stream) => guard.run(`XLEN ${stream}`, () => main.xlen(stream), { retry: true }),
      trimDelivered: (stream) => Effect.map(script(`XTRIM MINID ${stream}`, TRIM_DELIVERED, [stream], []), Number),
      trim: (stream, maxLen) => guard.run(`XTRIM ${stream}`, () => main.xtrim(stream, "MAXLEN", maxLen)),
      del: (keys) => (keys.length === 0 ? Effect.void : Effect.asVoid(guard.run(`DEL`, () => main.del(...keys)))),
      stats: Effect.map(guard.breakerState, (breaker) => ({
        connected: main.status === "ready",
        outbox: outbox.durableSize,
        outboxDroppable: outbox.droppableSize,
        telemetryDropped: outbox.dropped,
        reconnects,
        breaker,
      })),
    } satisfies RedisBus;
  });

/** A group's row of XINFO GROUPS (a flat list of name, value pairs). */
const groupInfoOf = (rows: readonly unknown[][], group: string): GroupInfo | undefined => {
  for (const row of rows) {
    const info = new Map<string, unknown>();
    for (let i = 0; i + 1 < row.length; i += 2) info.set(String(row[i]), row[i + 1]);
    if (String(info.get("name")) === group) return { lastDeliveredId: String(info.get("last-delivered-id") ?? "0-0"), pending: Number(info.get("pending") ?? 0) };
  }
  return undefined;
};

const toPending = ([id, consumer, idleMs, deliveries]: PendingRow): PendingEntry => ({
  id,
  consumer,
  idleMs: Number(idleMs),
  deliveries: Number(deliveries),
});

export const RedisBus = {
  make: makeRedisBus,
  /** The bus as a service, its connections living as long as the Layer. */
  layer: (options: RedisBusOptions = {}): Layer.Layer<BusService, BusError> => Layer.effect(BusService, makeRedisBus(options)),
};
