import { Effect } from "effect";
import { BusError, type Bus, type CommitOp, type DeadLetter, type Entry, type EntryFields } from "./bus.ts";

/**
 * Dead letters as PROTOCOL.md fixes them: the original fields plus `stream`, `id`, `code`,
 * `error`, `deliveries`, `failed_at` (ms since the epoch). Both buses build letters here, so the
 * format has one definition; listing and replay work against any Bus.
 */
export const DEAD_LETTER_FIELDS = ["stream", "id", "code", "error", "deliveries", "failed_at"] as const;

export const deadLetterFields = (letter: DeadLetter, failedAt: number): EntryFields => ({
  ...letter.entry.fields,
  stream: letter.entry.stream,
  id: letter.entry.id,
  code: letter.code,
  error: letter.error,
  deliveries: String(letter.entry.deliveries),
  failed_at: String(failedAt),
});

/** Append and ack in one commit: an entry is never acked without its letter, nor lettered twice on success. */
export const deadLetterOps = (letter: DeadLetter, failedAt: number): readonly CommitOp[] => [
  { op: "xadd", stream: letter.dlq, fields: deadLetterFields(letter, failedAt) },
  { op: "ack", stream: letter.entry.stream, group: letter.group, ids: [letter.entry.id] },
];

export interface DeadLetterRecord {
  readonly dlq: string;
  /** The letter's own id in the dead-letter stream. */
  readonly dlqId: string;
  /** Original stream and entry id. */
  readonly stream: string;
  readonly id: string;
  readonly code: string;
  readonly error: string;
  readonly deliveries: number;
  readonly failedAt: number;
  /** The original fields, dead-letter fields removed: what a replay appends. */
  readonly fields: EntryFields;
}

const text = (value: Uint8Array | string | undefined): string =>
  value === undefined ? "" : typeof value === "string" ? value : Buffer.from(value).toString("utf8");

/** Reads a dead-letter stream entry; undefined when it lacks the fields every letter carries. */
export const readDeadLetter = (dlq: string, entry: Entry): DeadLetterRecord | undefined => {
  const { stream, id, code, error, deliveries, failed_at, ...original } = entry.fields;
  if (stream === undefined || id === undefined) return undefined;
  return {
    dlq,
    dlqId: entry.id,
    stream: text(stream),
    id: text(id),
    code: text(code),
    error: text(error),
    deliveries: Number(text(deliveries)),
    failedAt: Number(text(failed_at)),
    fields: original as EntryFields,
  };
};

export interface ListDeadLettersOptions {
  /** Only letters whose original stream is this one. */
  readonly stream?: string;
  /** Most letters returned. Default 100. */
  readonly count?: number;
  /** Start after this letter id (paging). Default: the beginning. */
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
      return yield* new BusError({ reason: "command_failed", message: `no dead letter ${dlqId} in ${dlq}` });
    }
    const [id] = yield* bus.commit([
      { op: "xadd", stream: letter.stream, fields: letter.fields },
      { op: "xdel", stream: dlq, ids: [dlqId] },
    ]);
    return id!;
  });
