/**
 * The demo's processes on Redis: `esper worker`s that own the layers and `esper tamiyo`s that
 * steer them, each a child process started with the same `esper` command a user runs. With
 * standbys, every role is started more than once: one holds each lease, the others wait to take
 * over (docs/operations.md). The trainer is the caller's process.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LayerProfile } from "../tamiyo/population.ts";

/** What the cluster runs. */
export interface ClusterOptions {
  readonly redisUrl: string;
  readonly namespace: string;
  /** The layers to own, with their seed counts. */
  readonly layers: readonly { readonly id: string; readonly seeds: number }[];
  /** Tamiyo's view of the layers (her `--profile`). */
  readonly profiles: readonly LayerProfile[];
  readonly strategy: string;
  /** Tamiyo decides whenever every layer reported this many more ticks (`--decide-every-ticks`). */
  readonly decideEveryTicks: number;
  /** Extra processes per role, waiting to take over. Default 0. */
  readonly standbys?: number;
  /** Each line a process prints on stderr (role changes, warnings), with its name. */
  readonly onLog?: (name: string, line: string) => void;
  /** How long a process may take to print `ready`. Default 60 s. */
  readonly readyTimeoutMs?: number;
}

/** One child process of the cluster. */
export interface ClusterProcess {
  readonly name: string;
  readonly role: "worker" | "tamiyo";
  /** The running process's pid, undefined once it exited. */
  readonly pid: () => number | undefined;
  /** Whether it holds its lease now (owns every layer it serves, or leads), from what it printed. */
  readonly leading: () => boolean;
  /** SIGKILL, as a crash: resolves once it exited. */
  readonly kill: () => Promise<void>;
  /** What it printed last. */
  readonly tail: () => string;
}

/** A JSON line `esper tamiyo` prints: a decision as she sends it, or the answer to one (`{ command, outcome }`). */
export type DecisionLine = Readonly<Record<string, unknown>>;

export interface Cluster {
  readonly processes: readonly ClusterProcess[];
  /** Tells `listener` every decision line any Tamiyo prints from now on; returns what stops it. */
  readonly decisions: (listener: (line: DecisionLine) => void) => () => void;
  /**
   * Stops the processes of `role` that still run (SIGTERM; SIGKILL after 10 s); without a role,
   * every process, and removes the profile file.
   */
  readonly stop: (role?: "worker" | "tamiyo") => Promise<void>;
}

/** The `esper` command of this package, from the sources or from dist/. */
const esperBin = (): string => {
  for (const up of ["../../bin/esper.js", "../../../bin/esper.js"]) {
    const path = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error("cannot find bin/esper.js next to esper's sources");
};

const TAIL_LINES = 30;

interface Child extends ClusterProcess {
  readonly ready: Promise<void>;
  readonly stop: () => Promise<void>;
  /** SIGKILL now, without waiting (from an `exit` handler, where nothing can be awaited). */
  readonly killNow: () => void;
}

const start = (name: string, role: "worker" | "tamiyo", args: readonly string[], options: ClusterOptions, onDecisionLine: (line: DecisionLine) => void): Child => {
  const child: ChildProcess = spawn(process.execPath, [esperBin(), role, ...args], { stdio: ["ignore", "pipe", "pipe"], env: process.env });
  const tail: string[] = [];
  let leading = false;
  let running = true;
  const keep = (line: string) => {
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
  };
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => (running = false));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} printed no 'ready' within ${options.readyTimeoutMs ?? 60_000} ms:\n${tail.join("\n")}`)), options.readyTimeoutMs ?? 60_000);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (code ${child.exitCode}) before it was ready:\n${tail.join("\n")}`));
    });
    lines(child.stdout!, (line) => {
      keep(line);
      if (line === "ready") {
        clearTimeout(timer);
        resolve();
      } else if (role === "tamiyo" && line.startsWith("{")) {
        try {
          onDecisionLine(JSON.parse(line) as DecisionLine);
        } catch {
          // not a decision line
        }
      }
    });
  });
  ready.catch(() => {});
  lines(child.stderr!, (line) => {
    keep(line);
    // The role lines of src/cli/run/worker.ts and tamiyo.ts.
    if (/: (owner \(lease token|leading \(token)/.test(line)) leading = true;
    if (/: (standby \(held by|standing by)/.test(line)) leading = false;
    options.onLog?.(name, line);
  });
  return {
    name,
    role,
    ready,
    pid: () => (running ? child.pid : undefined),
    leading: () => running && leading,
    tail: () => tail.join("\n"),
    kill: async () => {
      if (!running) return;
      child.kill("SIGKILL");
      await exited;
    },
    killNow: () => {
      if (running) child.kill("SIGKILL");
    },
    stop: async () => {
      if (!running) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
};

const lines = (stream: NodeJS.ReadableStream, onLine: (line: string) => void): void => {
  let buffered = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      onLine(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
    }
  });
};

/**
 * Starts the workers (one per seed count, so every layer is owned) and Tamiyo, each `1 + standbys`
 * times, and resolves once every process printed `ready`: the first of each role holds the lease.
 */
export const startCluster = async (options: ClusterOptions): Promise<Cluster> => {
  const dir = mkdtempSync(join(tmpdir(), "esper-demo-"));
  const profile = join(dir, "layers.json");
  writeFileSync(profile, JSON.stringify(options.profiles));
  const connection = ["--redis", options.redisUrl, "--namespace", options.namespace];
  const bySeeds = new Map<number, string[]>();
  for (const layer of options.layers) bySeeds.set(layer.seeds, [...(bySeeds.get(layer.seeds) ?? []), layer.id]);
  const copies = 1 + (options.standbys ?? 0);
  const children: Child[] = [];
  const listeners = new Set<(line: DecisionLine) => void>();
  const onDecisionLine = (line: DecisionLine) => listeners.forEach((listener) => listener(line));
  // A demo that dies without stopping them (an exception, process.exit) takes its processes along; Ctrl-C reaches them anyway.
  const orphaned = () => {
    for (const c of children) c.killNow();
  };
  process.once("exit", orphaned);
  const stop = async (role?: "worker" | "tamiyo") => {
    await Promise.all(children.filter((c) => role === undefined || c.role === role).map((c) => c.stop()));
    if (role === undefined) {
      process.removeListener("exit", orphaned);
      rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    // One role at a time, first copies first: the first started of each holds its lease.
    for (let copy = 1; copy <= copies; copy++) {
      let group = 0;
      for (const [seeds, ids] of bySeeds) {
        const name = `demo-worker-${++group}${copies > 1 ? `-${copy}` : ""}`;
        const child = start(name, "worker", [...connection, "--layer", ids.join(","), "--seeds", String(seeds), "--consumer", name], options, onDecisionLine);
        children.push(child);
        await child.ready;
      }
      const name = `demo-tamiyo${copies > 1 ? `-${copy}` : ""}`;
      const tamiyo = start(name, "tamiyo", [...connection, "--profile", profile, "--strategy", options.strategy, "--decide-every-ticks", String(options.decideEveryTicks), "--name", name], options, onDecisionLine);
      children.push(tamiyo);
      await tamiyo.ready;
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    processes: children,
    decisions: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stop,
  };
};
