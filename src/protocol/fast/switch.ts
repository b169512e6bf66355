/**
 * The one switch for every fast path in esper (this folder): hand-written decoders, the
 * telemetry byte scanner and writer, and in-process entries. Each is a shortcut around the
 * general path (the Effect Schemas of messages.ts, msgpackr, encoded entries), pinned to it by
 * property tests, and each earns its place in a benchmark (bench/, `*_no_fast` figures).
 *
 * `ESPER_FAST_PATHS=off` (or `0`, `false`) turns them all off for a process; benchmarks and
 * tests flip it at run time with `setFastPaths`, to measure and check both paths in one run.
 */
const fromEnv = (value: string | undefined): boolean => !(value !== undefined && /^(off|0|false|no)$/i.test(value.trim()));

let enabled = fromEnv(process.env.ESPER_FAST_PATHS);

/** Whether fast paths are on. Read at the point of use, so a switch takes effect at once. */
export const fastPaths = (): boolean => enabled;

/** Turns every fast path on or off; returns the previous setting. */
export const setFastPaths = (on: boolean): boolean => {
  const before = enabled;
  enabled = on;
  return before;
};
