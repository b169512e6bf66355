/**
 * `esper worker --topology reference` from the reference implementation's side: a Python program
 * that speaks only the reference's wire format (reference_client.py, redis-py) sends commands on
 * the reference's control stream and waits for their acknowledgements where the reference's
 * clients wait for them, publishes telemetry as the reference's TelemetryPublisher does (which the
 * layer's guards must see), and reads the transitions where the reference's event readers read
 * them. Needs python3 with the redis module (Debian: python3-redis); without it the test fails,
 * saying so, rather than skip.
 */
import { execFileSync, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { esper } from "../support/esper-cli.ts";
import { privateRedis } from "./private-redis.ts";

const redis = privateRedis();
const SCRIPT = fileURLToPath(new URL("./reference_client.py", import.meta.url));

/** The first python3 that can `import redis`: ESPER_PYTHON, then python3 on the PATH, then Debian's own. */
const pythonWithRedis = (): string => {
  const candidates = [process.env.ESPER_PYTHON, "python3", "/usr/bin/python3"].filter((c): c is string => c !== undefined && c !== "");
  for (const python of candidates) {
    try {
      execFileSync(python, ["-c", "import redis"], { stdio: "ignore" });
      return python;
    } catch {
      // not this one
    }
  }
  throw new Error(
    `this test needs python3 with the redis module, and none of ${candidates.join(", ")} has it: install Debian's python3-redis (apt-get install -y python3-redis) or point ESPER_PYTHON at a python3 that has redis`,
  );
};

const runPython = (python: string, args: readonly string[], timeoutMs = 90_000): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(python, [SCRIPT, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });

describe("esper worker --topology reference", () => {
  test("a reference-format Python client gets its acknowledgements, its telemetry reaches the guards, and its readers see the transitions", async () => {
    const python = pythonWithRedis();
    // The reference's clients name every stream under `morphogenetic`; this Redis is the file's own.
    const namespace = "morphogenetic";
    const worker = redis.worker({ namespace, layers: ["L1"], seeds: 8, args: ["--topology", "reference"] });
    await worker.start("reference-worker");

    const run = await runPython(python, [redis.url, namespace, "L1"]);
    const report = `python exit ${run.code}\n${run.stdout}\n${run.stderr}\nworker:\n${worker.output}`;
    expect(run.code, report).toBe(0);
    const checks = run.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(checks.filter((c) => c.check === "ack").map((c) => [c.target, c.success, c.command_type])).toEqual([
      ["GERMINATED", true, "LifecycleTransitionCommand"],
      ["TRAINING", true, "LifecycleTransitionCommand"],
    ]);
    expect(checks.find((c) => c.check === "guard_refuses_without_telemetry")).toMatchObject({ success: false });
    expect(checks.find((c) => c.check === "guard_passes_with_telemetry")).toMatchObject({ success: true });
    expect(checks.find((c) => c.check === "transition_events")).toMatchObject({
      stream: "morphogenetic.event.statetransitionevent.layer.L1",
      transitions: [
        ["DORMANT", "GERMINATED"],
        ["GERMINATED", "TRAINING"],
        ["TRAINING", "GRAFTING"],
      ],
    });
    expect(checks.find((c) => c.check === "dead_letter")).toMatchObject({ dlq: "morphogenetic.dlq.layer.{L1}", stream: "morphogenetic.control.layer.L1", code: "invalid_message" });
    expect(run.stdout.trimEnd().endsWith("OK"), report).toBe(true);

    // esper's own client speaks the same topology: its command goes where the reference's do, and is acknowledged there too.
    const before = await redis.admin.xlen("morphogenetic.control.ack.layer.L1");
    const sent = await esper(["send", "--redis", redis.url, "--namespace", namespace, "--topology", "reference", "--layer", "L1", "--seed", "4", "--target", "GERMINATED"]);
    expect(sent.code, sent.stderr).toBe(0);
    expect(JSON.parse(sent.stdout)).toMatchObject({ success: true, code: "ok", layer_id: "L1", seed_id: 4 });
    expect(await redis.admin.xlen("morphogenetic.control.ack.layer.L1")).toBe(before + 1);
    // The layer's own keys keep esper's names: its backlog is read on the reference's control stream.
    const status = await esper(["status", "--redis", redis.url, "--namespace", namespace, "--topology", "reference", "--json", "--layer", "L1"]);
    expect(JSON.parse(status.stdout).layers).toEqual([{ layerId: "L1", owner: { holder: expect.stringMatching(/^reference-worker\//), token: 1 }, pending: 0, lag: 0, deadLetters: 1 }]);

    expect(await worker.terminate()).toBe(0);
  }, 180_000);
});
