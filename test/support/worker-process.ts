/**
 * `esper worker` as a child process, as an operator runs it: the chaos test SIGKILLs and starts it
 * again, the black-box tests (test/blackbox) speak to it only through Redis. Exits it did not ask
 * for are counted and kept with the worker's last output, since a worker is meant to ride out a
 * Redis outage rather than die of it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
/** Lines of output kept per worker process, for failure messages. */
const TAIL_LINES = 40;

export interface WorkerOptions {
  readonly redisUrl: string;
  readonly namespace: string;
  readonly layers: readonly string[];
  readonly seeds: number;
  /** More flags, e.g. ["--hmac-key-file", path]. */
  readonly args?: readonly string[];
  /** More environment, e.g. { ESPER_INSPECT: "file:..." }. */
  readonly env?: Readonly<Record<string, string>>;
  /** `esper tamiyo` instead of `esper worker` (same flags; the name is its `--name`). Default worker. */
  readonly command?: "worker" | "tamiyo";
}

export interface UnplannedExit {
  readonly consumer: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Whether it had printed `ready` (a worker that cannot reach Redis at start may exit; a running one should not). */
  readonly wasReady: boolean;
  readonly tail: string;
}

export class WorkerProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private planned = false;
  private tail: string[] = [];
  private exitCode: number | null = null;
  private lineWaiters: Array<{ readonly pattern: RegExp; readonly resolve: (line: string) => void }> = [];
  readonly unplannedExits: UnplannedExit[] = [];
  starts = 0;

  constructor(private readonly options: WorkerOptions) {}

  get running(): boolean {
    return this.child !== undefined;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The exit code of the last process that exited (null: killed by a signal, or none exited). */
  get lastExitCode(): number | null {
    return this.exitCode;
  }

  /** What the worker printed last (stdout and stderr), for failure messages. */
  get output(): string {
    return this.tail.join("\n");
  }

  /** The worker's resident memory now, in MB (Linux /proc). */
  rssMb(): number {
    const status = readFileSync(`/proc/${this.child!.pid}/status`, "utf8");
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
  }

  /**
   * Spawns a worker and resolves once it prints `ready`; rejects if it exits first or takes longer
   * than `timeoutMs`. `consumer` undefined: the default name (host and pid, new on every start).
   * `waitReady` false: resolves at once (a worker that must wait for Redis first).
   */
  start(consumer: string | undefined, timeoutMs = 60_000, waitReady = true): Promise<void> {
    if (this.child !== undefined) throw new Error(`a worker is already running (pid ${this.child.pid})`);
    const o = this.options;
    const command = o.command ?? "worker";
    const args = ["--import", "tsx", MAIN, command, "--redis", o.redisUrl, "--namespace", o.namespace, "--layer", o.layers.join(","), "--seeds", String(o.seeds)];
    if (consumer !== undefined) args.push(command === "tamiyo" ? "--name" : "--consumer", consumer);
    args.push(...(o.args ?? []));
    const { NODE_OPTIONS: _inherited, ...inherited } = process.env;
    const child = spawn(process.execPath, args, { cwd: REPO, env: { ...inherited, ...o.env }, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    this.planned = false;
    this.tail = [];
    this.starts++;
    let ready = false;
    const keep = (chunk: Buffer) => {
      const lines = chunk.toString().split("\n").filter((l) => l !== "");
      this.tail.push(...lines);
      if (this.tail.length > TAIL_LINES) this.tail.splice(0, this.tail.length - TAIL_LINES);
      for (const line of lines) {
        for (const w of this.lineWaiters.filter((w) => w.pattern.test(line))) w.resolve(line);
        this.lineWaiters = this.lineWaiters.filter((w) => !w.pattern.test(line));
      }
    };
    child.stderr!.on("data", keep);
    this.exited = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        this.exitCode = code;
        if (this.child === child) this.child = undefined;
        if (!this.planned) this.unplannedExits.push({ consumer: consumer ?? "(default)", code, signal, wasReady: ready, tail: this.tail.join("\n") });
        resolve();
      }),
    );
    if (!waitReady) {
      child.stdout!.on("data", keep);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`worker ${consumer} did not print ready within ${timeoutMs} ms:\n${this.tail.join("\n")}`)), timeoutMs);
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(error);
      };
      child.stdout!.on("data", (chunk: Buffer) => {
        keep(chunk);
        if (!ready && /^ready$/m.test(chunk.toString())) {
          ready = true;
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code, signal) => {
        if (!ready) fail(new Error(`worker ${consumer} exited (code ${code}, signal ${signal}) before ready:\n${this.tail.join("\n")}`));
      });
      child.once("error", fail);
    });
  }

  /** Resolves with the first line (stdout or stderr) matching `pattern` from now on; rejects after `timeoutMs`. */
  nextLine(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; last output:\n${this.output}`)), timeoutMs);
      this.lineWaiters.push({ pattern, resolve: (line) => (clearTimeout(timer), resolve(line)) });
    });
  }

  /** SIGTERM, as a supervisor stops it: it finishes what it holds and exits. Resolves with its exit code. */
  async terminate(): Promise<number | null> {
    const child = this.child;
    if (child === undefined) return this.exitCode;
    this.planned = true;
    child.kill("SIGTERM");
    await this.exited;
    return this.exitCode;
  }

  /** SIGKILL: no finalizer runs, nothing in hand is committed or acked. Resolves once it has exited. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.pid === undefined) return;
    this.planned = true;
    child.kill("SIGKILL");
    await this.exited;
  }

  /** Synchronous last resort for process exit handlers. */
  killNow(): void {
    if (this.child?.pid !== undefined) {
      this.planned = true;
      this.child.kill("SIGKILL");
    }
  }

  /** Resolves when the current process exits (at once if none runs). */
  whenExited(): Promise<void> {
    return this.exited;
  }
}
