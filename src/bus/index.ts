export {
  BusError,
  BusService,
  DEFAULT_BLOCK_MS,
  DEFAULT_MAXLEN,
  DEFAULT_PENDING_COUNT,
  DEFAULT_READ_COUNT,
  type Bus,
  type BusErrorReason,
  type CommitOp,
  type DeadLetter,
  type DeferredBytes,
  type Entry,
  type EntryFields,
  type GroupInfo,
  type HashValue,
  type PendingEntry,
  type Reader,
  type ReaderOptions,
} from "./bus.ts";
export { MemoryBus, type MemoryBusOptions } from "./memory-bus.ts";
export { RedisBus, makeRedisBus, type RedisBusStats } from "./redis-bus.ts";
export { connectRedis, type RedisConnection, type RedisTarget } from "./connect-redis.ts";
export { REDIS_BUS_DEFAULTS, type RedisBusOptions } from "./redis-options.ts";
export {
  DEFAULT_MAX_DELIVERIES,
  maxDeliveriesError,
  runJanitor,
  sweep,
  type JanitorOptions,
  type RunJanitorOptions,
  type Sweep,
} from "./janitor.ts";
export {
  DEAD_LETTER_FIELDS,
  deadLetterOp,
  letterFields,
  listDeadLetters,
  readDeadLetter,
  replayDeadLetter,
  type DeadLetterRecord,
  type ListDeadLettersOptions,
} from "./dead-letters.ts";
