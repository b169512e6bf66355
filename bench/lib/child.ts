/**
 * Child processes of benchmarks (the esper worker, the raw echo, probes): started with this
 * node and tsx's loader (one process, so killing it leaves nothing behind), waited for until
 * they print a line, and always killed, even when the benchmark throws or the runner exits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

const live = new Set<ChildProcess>();
const killAll = () => {
  for (const child of live) child.kill("SIGKILL");
};
process.on("exit", killAll);
// A runner stopped by a signal emits no "exit": take the children down with it.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(128 + (signal === "SIGINT" ? 2 : 15));
  });
}

export interface Child {
  readonly process: ChildProcess;
  /** Lines printed on stdout so far. */
  readonly lines: string[];
  /** Resolves with the first stdout line matching `test`; rejects if the child exits first or after `timeoutMs`. */
  readonly waitFor: (test: (line: string) => boolean, timeoutMs?: number) => Promise<string>;
  /** Writes `line` to its stdin (started with `input: true`) and resolves with the next line it prints. */
  readonly request: (line: string, timeoutMs?: number) => Promise<string>;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  readonly kill: (graceMs?: number) => Promise<void>;
}

/** Runs `node [nodeArgs] --import tsx script args` from the repository root. */
export const startChild = (script: string, args: readonly string[], options: { readonly nodeArgs?: readonly string[]; readonly input?: boolean } = {}): Child => {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), "--import", "tsx", script, ...args], { cwd: REPO, stdio: [options.input ? "pipe" : "ignore", "pipe", "pipe"] });
  live.add(child);
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let exited = false;
  createInterface({ input: child.stdout! }).on("line", (line) => {
    lines.push(line);
    for (const w of waiters) w();
  });
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on("line", (line) => {
    stderr.push(line);
    if (stderr.length > 50) stderr.shift();
  });
  const exit = new Promise<void>((resolve) =>
    child.on("exit", () => {
      exited = true;
      live.delete(child);
      for (const w of waiters) w();
      resolve();
    }),
  );
  const waitFor = (test: (line: string, index: number) => boolean, timeoutMs = 60_000) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const line = lines.find(test);
        if (line !== undefined) done(() => resolve(line));
        else if (exited) done(() => reject(new Error(`${script} exited:\n${stderr.join("\n")}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`${script} did not answer within ${timeoutMs} ms:\n${stderr.join("\n")}`))), timeoutMs);
      const done = (settle: () => void) => {
        clearTimeout(timer);
        waiters.delete(check);
        settle();
      };
      waiters.add(check);
      check();
    });
  return {
    process: child,
    lines,
    request: (line, timeoutMs) => {
      const from = lines.length;
      child.stdin!.write(`${line}\n`);
      return waitFor((_, index) => index >= from, timeoutMs);
    },
    waitFor: (test, timeoutMs) => waitFor((line) => test(line), timeoutMs),
    kill: async (graceMs = 3_000) => {
      if (exited) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exit;
      clearTimeout(timer);
    },
  };
};
