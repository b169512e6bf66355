import { spawn, type ChildProcess } from "node:child_process";
import { createServer, Socket } from "node:net";

/**
 * A private redis-server for tests that stop, kill and restart Redis (outbox, reconnect,
 * chaos). It runs on a free port, is stopped by its PID, and with `appendonly` keeps its data
 * across restarts in `dir`.
 */
export interface RedisServerOptions {
  /** Default: a free port. */
  readonly port?: number;
  /** AOF persistence, so data and consumer groups survive a restart. Default false. */
  readonly appendonly?: boolean;
  /** Default "always" when appendonly: nothing acknowledged is lost to a kill. */
  readonly appendfsync?: "always" | "everysec" | "no";
  /** Working directory for the AOF; required with appendonly. */
  readonly dir?: string;
  readonly extraArgs?: readonly string[];
  /** Start it now (default), or leave it to `start()` (a test of what happens before Redis is there). */
  readonly startNow?: boolean;
}

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly pid: () => number | undefined;
  readonly running: () => boolean;
  /** Starts it again on the same port with the same options (and, with AOF, the same data). */
  readonly start: () => Promise<void>;
  /** SIGTERM for a clean shutdown, SIGKILL for a crash. Resolves once the process has exited. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<void>;
}

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const answersPing = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once("error", () => done(false));
    socket.once("data", (data) => done(data.toString().startsWith("+PONG")));
    socket.connect(port, "127.0.0.1", () => socket.write("PING\r\n"));
  });

export const startRedisServer = async (options: RedisServerOptions = {}): Promise<RedisServer> => {
  if (options.appendonly && options.dir === undefined) throw new Error("startRedisServer: appendonly needs a dir");
  const port = options.port ?? (await freePort());
  const args = [
    "--port", String(port),
    "--bind", "127.0.0.1",
    "--save", "",
    "--appendonly", options.appendonly ? "yes" : "no",
    ...(options.appendonly ? ["--appendfsync", options.appendfsync ?? "always"] : []),
    ...(options.dir !== undefined ? ["--dir", options.dir] : []),
    ...(options.extraArgs ?? []),
  ];
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = async () => {
    if (child !== undefined) throw new Error(`redis-server on port ${port} is already running (pid ${child.pid})`);
    let output = "";
    const proc = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    proc.stdout!.on("data", (chunk) => (output += chunk));
    proc.stderr!.on("data", (chunk) => (output += chunk));
    let gone = false;
    exited = new Promise((resolve) =>
      proc.once("exit", () => {
        gone = true;
        if (child === proc) child = undefined;
        resolve();
      }),
    );
    proc.once("error", () => (gone = true));
    child = proc;
    for (let waited = 0; waited < 10_000; waited += 25) {
      if (gone) throw new Error(`redis-server exited at start (is redis-server installed?):\n${output}`);
      if (await answersPing(port)) return;
      await sleep(25);
    }
    proc.kill("SIGKILL");
    throw new Error(`redis-server on port ${port} did not answer PING within 10 s:\n${output}`);
  };

  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    const proc = child;
    if (proc === undefined || proc.pid === undefined) return;
    process.kill(proc.pid, signal);
    await exited;
  };

  if (options.startNow !== false) await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: () => child?.pid,
    running: () => child !== undefined,
    start,
    stop,
  };
};
