/**
 * The `esper` command as a child process, for tests that use it as an operator would: a command
 * that runs to its end (`esper dlq list`), or one that runs until told to stop (`esper events`).
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));

export interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const spawnEsper = (args: readonly string[]) => {
  const { NODE_OPTIONS: _inherited, ...env } = process.env;
  return spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { cwd: REPO, env: { ...env, FORCE_COLOR: "0" }, stdio: ["ignore", "pipe", "pipe"] });
};

/** Runs `esper ...args` to its end. */
export const esper = (args: readonly string[], timeoutMs = 60_000): Promise<Finished> =>
  new Promise((resolve, reject) => {
    const child = spawnEsper(args);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`esper ${args.join(" ")} did not finish within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`));
    }, timeoutMs);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });

/** Starts a long-running `esper ...args`; `lines` waits for output, `stop` sends SIGINT and waits for it to end. */
export const esperRunning = (args: readonly string[]) => {
  const child = spawnEsper(args);
  let stdout = "";
  let stderr = "";
  const changed: Array<() => void> = [];
  const note = () => changed.splice(0).forEach((f) => f());
  child.stdout.on("data", (chunk) => ((stdout += chunk), note()));
  child.stderr.on("data", (chunk) => ((stderr += chunk), note()));
  const ended = new Promise<Finished>((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
  return {
    /** Resolves once `probe(stdout, stderr)` holds; rejects after `timeoutMs`. */
    until: (what: string, probe: (stdout: string, stderr: string) => boolean, timeoutMs = 30_000): Promise<void> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`esper ${args[0]}: no ${what} within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`)), timeoutMs);
        const check = () => {
          if (probe(stdout, stderr)) {
            clearTimeout(timer);
            resolve();
          } else changed.push(check);
        };
        check();
      }),
    stop: async (): Promise<Finished> => {
      child.kill("SIGINT");
      return ended;
    },
  };
};
