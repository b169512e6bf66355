import { Effect } from "effect";
import { BusError, type Bus, type CommitOp, type DeadLetter, type Entry, type EntryFields } from "./bus.ts";

/**
 * Dead letters as docs/protocol.md fixes them: the original fields plus `stream`, `id`, `code`,
 * `error`, `deliveries`, `failed_at` (ms since the epoch). Both buses build letters from these
 * definitions (MemoryBus here, RedisBus in its commit script, which copies the entry on the
 * server), so listing and replay work against any Bus.
 *
 * An original field whose name is one of those six, or starts with `orig:`, is stored as
 * `orig:` + its name: a letter never overwrites what it carries, and a replay restores every
 * original field exactly (a writer's own `orig:x` comes back as `orig:x`).
 */
export const DEAD_LETTER_FIELDS = ["stream", "id", "code", "error", "deliveries", "failed_at"] as const;
export const ESCAPE_PREFIX = "orig:";

const RESERVED: ReadonlySet<string> = new Set(DEAD_LETTER_FIELDS);

/** The name an original field is stored under in a letter. */
export const letterFieldName = (name: string): string => (RESERVED.has(name) || name.startsWith(ESCAPE_PREFIX) ? ESCAPE_PREFIX + name : name);

/** The original name of a letter field that is not one of the six. */
export const originalFieldName = (name: string): string => (name.startsWith(ESCAPE_PREFIX) ? name.slice(ESCAPE_PREFIX.length) : name);

export interface LetterInfo {
  /** The stream the entry was read from, where a replay appends it. */
  readonly stream: string;
  /** The entry's id in that stream. */
  readonly id: string;
  /** Why it was dead-lettered (e.g. `bad_signature`, `invalid_message`). */
  readonly code: string;
  /** The reason in words. */
  readonly error: string;
  /** How many times it had been delivered when it was dead-lettered. */
  readonly deliveries: number;
  /** When it was dead-lettered, in ms since the epoch. */
  readonly failedAt: number;
}

/** A letter: the original fields (escaped), then the six dead-letter fields. `original` undefined: the entry was gone. */
export const letterFields = (original: Readonly<Record<string, Uint8Array | string>> | undefined, info: LetterInfo): EntryFields => {
  const out: Record<string, Uint8Array | string> = {};
  if (original !== undefined) for (const name of Object.keys(original)) out[letterFieldName(name)] = original[name]!;
  out.stream = info.stream;
  out.id = info.id;
  out.code = info.code;
  out.error = info.error;
  out.deliveries = String(info.deliveries);
  out.failed_at = String(info.failedAt);
  return out as unknown as EntryFields;
};

/** The commit op that moves `letter.entry` to its dead-letter stream and acks it, atomically. */
export const deadLetterOp = (letter: DeadLetter, failedAt: number, maxLen?: number): CommitOp => ({
  op: "deadletter",
  dlq: letter.dlq,
  stream: letter.entry.stream,
  group: letter.group,
  id: letter.entry.id,
  code: letter.code,
  error: letter.error,
  deliveries: letter.entry.deliveries,
  failedAt,
  ...(maxLen === undefined ? {} : { maxLen }),
});

/** A letter as read back: where it is, what it says (LetterInfo: original stream and entry id, code, error...), and what it carries. */
export interface DeadLetterRecord extends LetterInfo {
  /** The dead-letter stream it is in (P.dlq.layer.{L} or P.dlq.all). */
  readonly dlq: string;
  /** The letter's own id in the dead-letter stream. */
  readonly dlqId: string;
  /** The original fields, under their original names: what a replay appends. */
  readonly fields: EntryFields;
}

const text = (value: Uint8Array | string | undefined): string =>
  value === undefined ? "" : typeof value === "string" ? value : Buffer.from(value).toString("utf8");

/** Reads a dead-letter stream entry; undefined when it lacks the fields every letter carries. */
export const readDeadLetter = (dlq: string, entry: Entry): DeadLetterRecord | undefined => {
  const f = entry.fields as Readonly<Record<string, Uint8Array | string>>;
  if (f.stream === undefined || f.id === undefined) return undefined;
  const original: Record<string, Uint8Array | string> = {};
  for (const name of Object.keys(f)) if (!RESERVED.has(name)) original[originalFieldName(name)] = f[name]!;
  return {
    dlq,
    dlqId: entry.id,
    stream: text(f.stream),
    id: text(f.id),
    code: text(f.code),
    error: text(f.error),
    deliveries: Number(text(f.deliveries)),
    failedAt: Number(text(f.failed_at)),
    fields: original as unknown as EntryFields,
  };
};

/** Which letters `listDeadLetters` returns: a filter on the original stream, a page size, and where to start. */
export interface ListDeadLettersOptions {
  /** Only letters whose original stream is this one. */
  readonly stream?: string;
  /** Most letters returned. Default 100. */
  readonly count?: number;
  /** Start after this letter id, excluded: pass the last `dlqId` of a page for the next one. Default: the beginning. */
  readonly after?: string;
}

const PAGE = 256;

/** Letters oldest first. With a stream filter it pages through the dead-letter stream until it has `count`. */
export const listDeadLetters = (
  bus: Bus,
  dlq: string,
  options: ListDeadLettersOptions = {},
): Effect.Effect<readonly DeadLetterRecord[], BusError> =>
  Effect.gen(function* () {
    const want = options.count ?? 100;
    const found: DeadLetterRecord[] = [];
    let start = options.after === undefined ? "-" : `(${options.after}`;
    while (found.length < want) {
      const page = yield* bus.range(dlq, start, "+", options.stream === undefined ? want - found.length : PAGE);
      for (const entry of page) {
        const letter = readDeadLetter(dlq, entry);
        if (letter === undefined || (options.stream !== undefined && letter.stream !== options.stream)) continue;
        found.push(letter);
        if (found.length === want) break;
      }
      if (page.length === 0 || options.stream === undefined) break;
      start = `(${page[page.length - 1]!.id}`;
    }
    return found;
  });

/**
 * Appends the letter's original fields to its original stream and removes the letter (XDEL),
 * in one commit: a replay is either done and gone from the list, or not done at all, and
 * replaying the same letter again afterwards fails instead of delivering it twice (two replays
 * racing on the same letter are not guarded against). Returns the new entry's id.
 */
export const replayDeadLetter = (bus: Bus, dlq: string, dlqId: string): Effect.Effect<string, BusError> =>
  Effect.gen(function* () {
    const [entry] = yield* bus.range(dlq, dlqId, dlqId, 1);
    const letter = entry === undefined ? undefined : readDeadLetter(dlq, entry);
    if (letter === undefined) {
      return yield* new BusError({ reason: "command_failed", message: `no dead letter ${dlqId} in ${dlq}; list them with: esper dlq list` });
    }
    if (letter.fields.data === undefined) {
      return yield* new BusError({
        reason: "command_failed",
        message: `dead letter ${dlqId} holds no original entry (it was trimmed from ${letter.stream} before it was dead-lettered); nothing to replay`,
      });
    }
    const [id] = yield* bus.commit([
      // Not trimmed by length: a control stream must not lose unread commands to a replay.
      { op: "xadd", stream: letter.stream, fields: letter.fields, maxLen: null },
      { op: "xdel", stream: dlq, ids: [dlqId] },
    ]);
    return id!;
  });
