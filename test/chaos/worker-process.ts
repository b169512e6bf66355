/**
 * `esper worker` as a child process the chaos test can SIGKILL and start again. Exits it did not
 * ask for are counted and kept with the worker's last output, since a worker is meant to ride
 * out a Redis outage rather than die of it.
 */
import { spawn, type ChildProcess } from "node:child_process";
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
  readonly claimIdleMs: number;
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
  readonly unplannedExits: UnplannedExit[] = [];
  starts = 0;

  constructor(private readonly options: WorkerOptions) {}

  get running(): boolean {
    return this.child !== undefined;
  }

  /** Spawns a worker under `consumer` and resolves once it prints `ready`; rejects if it exits first or takes longer than `timeoutMs`. */
  start(consumer: string, timeoutMs = 60_000): Promise<void> {
    if (this.child !== undefined) throw new Error(`a worker is already running (pid ${this.child.pid})`);
    const o = this.options;
    const args = ["--import", "tsx", MAIN, "worker", "--redis", o.redisUrl, "--namespace", o.namespace, "--layer", o.layers.join(","), "--seeds", String(o.seeds), "--consumer", consumer, "--claim-idle-ms", String(o.claimIdleMs)];
    const { NODE_OPTIONS: _inherited, ...env } = process.env;
    const child = spawn(process.execPath, args, { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    this.planned = false;
    this.tail = [];
    this.starts++;
    let ready = false;
    const keep = (chunk: Buffer) => {
      this.tail.push(...chunk.toString().split("\n").filter((l) => l !== ""));
      if (this.tail.length > TAIL_LINES) this.tail.splice(0, this.tail.length - TAIL_LINES);
    };
    child.stderr!.on("data", keep);
    this.exited = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        if (this.child === child) this.child = undefined;
        if (!this.planned) this.unplannedExits.push({ consumer, code, signal, wasReady: ready, tail: this.tail.join("\n") });
        resolve();
      }),
    );
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
