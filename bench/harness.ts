/**
 * What every benchmark shares. A benchmark is a module `bench/<name>.ts` whose default export
 * is a `Benchmark`: it measures esper and its baseline alternately (docs/benchmarks.md),
 * logs progress through `log` (stderr) and returns its figures; the runner prints them as one
 * JSON line `{"bench": name, ...figures}` last on stdout.
 */
export interface BenchOptions {
  /** A smoke run: tiny counts, proves the benchmark still works, never judges speed. */
  readonly quick: boolean;
  /** Progress for people, on stderr. */
  readonly log: (message: string) => void;
  /** Redis for benchmarks that need it. */
  readonly redisUrl: string;
}

export type Figures = Record<string, number | string | boolean | null | readonly number[]>;
export type Benchmark = (options: BenchOptions) => Promise<Figures>;

export const median = (values: readonly number[]): number => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** The q-quantile (0..1) of the samples, nearest rank. */
export const quantile = (values: readonly number[], q: number): number => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
};

/** Rounds for printing: figures are noisy, more digits only mislead. */
export const round = (value: number, digits = 3): number => {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
};
