/**
 * The esper command as a user meets it: --help and --version everywhere, usage errors exit 2 and
 * say what to do before anything connects (regression: `esper dlq replay` without --id exited 1;
 * `esper worker --help` answered "Unknown option"), and an unreachable Redis is named with the
 * way to start one.
 */
import { describe, expect, test } from "vitest";
import { esper } from "../support/esper-cli.ts";

describe("esper usage errors", () => {
  test("dlq replay without --id exits 2 and names the option", async () => {
    const run = await esper(["dlq", "replay", "--redis", "redis://127.0.0.1:1"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/required option '--id <dlq_id>' not specified[\s\S]*add --help/);
  });

  test("dlq list with a --count that is not a positive integer exits 2", async () => {
    const run = await esper(["dlq", "list", "--count", "x", "--redis", "redis://127.0.0.1:1"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--count must be a positive integer, got x/);
  });

  test.each(["demo", "machines", "worker", "send", "events", "dlq", "dlq list", "dlq replay", "layer", "layer reset", "status", "inspect", "tamiyo"])(
    "esper %s --help prints its usage and exits 0, doing nothing else",
    async (command) => {
      const run = await esper([...command.split(" "), "--help"]);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^Usage: esper ${command} `));
      expect(run.stdout).not.toMatch(/^(training the host|ready|wrote )/m);
    },
  );

  test("esper --version prints the package's version", async () => {
    const run = await esper(["--version"]);
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  test("an unknown command or option exits 2, says which, and points at --help", async () => {
    const command = await esper(["bogus"]);
    expect(command.code).toBe(2);
    expect(command.stderr).toMatch(/unknown command 'bogus'[\s\S]*add --help/);
    const option = await esper(["worker", "--layer", "L", "--seeds", "1", "--nope"]);
    expect(option.code).toBe(2);
    expect(option.stderr).toMatch(/unknown option '--nope'/);
  });

  test("a Redis that is not there: the command says what failed and what to do next", async () => {
    const run = await esper(["send", "--redis", "redis://127.0.0.1:1", "--layer", "L", "--seed", "1", "--target", "GERMINATED"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/redis:\/\/127\.0\.0\.1:1[\s\S]*is Redis running at redis:\/\/127\.0\.0\.1:1\? start one with: redis-server --daemonize yes --port 1/);
  });

  test("--redis that is not a Redis URL is a usage error before any connection", async () => {
    const run = await esper(["send", "--redis", "notaurl", "--layer", "L", "--seed", "1", "--target", "GERMINATED"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--redis notaurl: not a URL; give a Redis URL such as redis:\/\/127\.0\.0\.1:6379/);
  });
});
