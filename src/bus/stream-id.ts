/**
 * Stream entry ids (`ms-seq`), parsed the way Redis parses them, so MemoryBus orders and
 * compares exactly like Redis Streams and both buses reject the same malformed ids.
 *
 * Numbers rather than bigints: milliseconds since the epoch and per-millisecond sequence
 * numbers stay far below 2^53 in practice, and number comparison keeps the hot paths cheap.
 */
export interface StreamId {
  readonly ms: number;
  readonly seq: number;
}

export const MIN_ID: StreamId = { ms: 0, seq: 0 };
export const MAX_ID: StreamId = { ms: Number.MAX_SAFE_INTEGER, seq: Number.MAX_SAFE_INTEGER };

const ID = /^(\d{1,19})(?:-(\d{1,19}))?$/;

/**
 * Parses `ms` or `ms-seq`. A bare `ms` means `ms-0` where a range starts and `ms-<max>` where
 * it ends, as in XRANGE. Returns undefined for anything Redis would answer "Invalid stream ID" to.
 */
export const parseStreamId = (text: string, bareMs: "start" | "end" = "start"): StreamId | undefined => {
  const match = ID.exec(text);
  if (match === null) return undefined;
  const ms = Number(match[1]);
  const seq = match[2] === undefined ? (bareMs === "start" ? 0 : MAX_ID.seq) : Number(match[2]);
  return { ms, seq };
};

export const isStreamId = (text: string): boolean => ID.test(text);

export const compareStreamIds = (a: StreamId, b: StreamId): number =>
  a.ms !== b.ms ? a.ms - b.ms : a.seq - b.seq;

export const formatStreamId = (id: StreamId): string => `${id.ms}-${id.seq}`;

/** Range bounds as XRANGE takes them: `-`, `+`, `ms`, `ms-seq`, or `(` before an id for an exclusive bound. */
export const parseRangeBound = (
  text: string,
  side: "start" | "end",
): { readonly id: StreamId; readonly exclusive: boolean } | undefined => {
  if (text === "-") return { id: MIN_ID, exclusive: false };
  if (text === "+") return { id: MAX_ID, exclusive: false };
  const exclusive = text.startsWith("(");
  const id = parseStreamId(exclusive ? text.slice(1) : text, side);
  return id === undefined ? undefined : { id, exclusive };
};
