/**
 * Opt-in inspection: `file:PATH` records Stately inspection events as JSON lines, `ws://` streams
 * them to a WebSocket inspector, anything else is a typed config error, and nothing happens
 * unless asked.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { WebSocketServer } from "ws";
import { inspectionFrom, InspectionConfigError } from "../../src/runtime/inspection.ts";
import { InspectorSocket } from "../../src/runtime/inspector-socket.ts";
import { startSystem } from "../../src/runtime/system.ts";

interface Recorded {
  readonly type: string;
  readonly sessionId: string;
  readonly name?: string;
  readonly parentId?: string;
  readonly event?: { readonly type: string; readonly [key: string]: unknown };
  readonly snapshot?: { readonly value?: unknown; readonly status?: string; readonly context?: Record<string, unknown> };
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "esper-inspect-"));
});
afterEach(() => {
  vi.unstubAllEnvs();
  rmSync(dir, { recursive: true, force: true });
});

const readLines = (path: string): Recorded[] =>
  readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as Recorded);

/** The session id of the seed actor with this id, from its @xstate.actor event. */
const sessionOf = (events: readonly Recorded[], actorName: string): string => {
  const actor = events.find((e) => e.type === "@xstate.actor" && e.name === actorName);
  expect(actor, `an @xstate.actor event for ${actorName}`).toBeDefined();
  return actor!.sessionId;
};

describe("file:PATH", () => {
  test("records the seed actors, the events they receive and their snapshots as JSON lines", async () => {
    const path = join(dir, "inspect.jsonl");
    const system = await startSystem({ layers: [{ id: "dense1", seeds: 2 }], inspect: `file:${path}` });
    await system.transition("dense1", 1, "GERMINATED", { reason: "plateau" });
    await system.emergencyStop("dense1", "inspection");
    await system.close();

    const events = readLines(path);
    expect(new Set(events.map((e) => e.type))).toEqual(new Set(["@xstate.actor", "@xstate.event", "@xstate.snapshot"]));

    const layer = sessionOf(events, "layer");
    const seed0 = sessionOf(events, "seed-0");
    const seed1 = sessionOf(events, "seed-1");
    // Every command goes through the layer, which decides and sends to its seed.
    expect(events).toContainEqual(expect.objectContaining({ type: "@xstate.event", sessionId: layer, event: expect.objectContaining({ type: "command" }) }));
    expect(events).toContainEqual(expect.objectContaining({ type: "@xstate.event", sessionId: layer, event: expect.objectContaining({ type: "emergency_stop" }) }));
    expect(events).toContainEqual(
      expect.objectContaining({ type: "@xstate.event", sessionId: seed1, event: expect.objectContaining({ type: "to.GERMINATED", reason: "plateau" }) }),
    );
    const seed1Values = events.filter((e) => e.type === "@xstate.snapshot" && e.sessionId === seed1).map((e) => e.snapshot?.value);
    expect(seed1Values).toContain("GERMINATED");
    expect(events.filter((e) => e.type === "@xstate.event" && e.sessionId === seed0).map((e) => e.event?.type)).not.toContain("to.GERMINATED");
  });

  // Regression: events reach the file on a later macrotask, so closing right after a command
  // ended the file stream first and the late write threw ERR_STREAM_WRITE_AFTER_END from a
  // timer (an uncaught exception), and the file lacked the last steps.
  test("closing right after a command neither crashes nor loses the last events", async () => {
    const path = join(dir, "last.jsonl");
    const system = await startSystem({ layers: [{ id: "dense1", seeds: 1 }], inspect: `file:${path}` });
    await system.transition("dense1", 0, "GERMINATED");
    await system.close();
    const events = readLines(path);
    const seed = sessionOf(events, "seed-0");
    const seedEvents = events.filter((e) => e.type === "@xstate.snapshot" && e.sessionId === seed).map((e) => e.event?.type);
    expect(seedEvents).toEqual(["xstate.init", "to.GERMINATED", "xstate.stop"]);
  });

  test("appends to an existing file rather than replacing it", async () => {
    const path = join(dir, "twice.jsonl");
    for (let i = 0; i < 2; i++) {
      const system = await startSystem({ layers: [{ id: "dense1", seeds: 1 }], inspect: `file:${path}` });
      await system.close();
    }
    expect(readLines(path).filter((e) => e.type === "@xstate.actor" && e.name === "layer")).toHaveLength(2);
  });

  test("ESPER_INSPECT is read when the config names no target", async () => {
    const path = join(dir, "from-env.jsonl");
    vi.stubEnv("ESPER_INSPECT", `file:${path}`);
    const system = await startSystem({ layers: [{ id: "dense1", seeds: 1 }] });
    await system.close();
    expect(readLines(path).some((e) => e.name === "seed-0")).toBe(true);
  });
});

describe("a target that is not understood", () => {
  test.each(["http://localhost:8080", "inspect.jsonl", "file"])("%s throws InspectionConfigError", (spec) => {
    let error: unknown;
    try {
      inspectionFrom(spec);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InspectionConfigError);
    expect(error).toMatchObject({ _tag: "InspectionConfigError" });
    expect((error as Error).message).toMatch(/ws:\/\/host:port.*file:PATH/);
  });

  test("file: without a path throws InspectionConfigError", () => {
    expect(() => inspectionFrom("file:")).toThrow(InspectionConfigError);
  });

  test("startSystem rejects with it", async () => {
    await expect(startSystem({ layers: [{ id: "dense1", seeds: 1 }], inspect: "udp://127.0.0.1:9" })).rejects.toBeInstanceOf(InspectionConfigError);
  });
});

/** A WebSocket inspector on `port` (0: any) that keeps what it is sent; `arrival` resolves once a received event satisfies `predicate`. */
const receiver = async (port = 0) => {
  const server = new WebSocketServer({ host: "127.0.0.1", port });
  await new Promise<void>((resolve, reject) => {
    server.on("listening", resolve);
    server.on("error", reject);
  });
  const received: Recorded[] = [];
  let wake: () => void = () => {};
  server.on("connection", (socket) => {
    socket.on("message", (data) => {
      received.push(JSON.parse(data.toString()) as Recorded);
      wake();
    });
  });
  /** Bounded by the test timeout, no polling. */
  const arrival = (predicate: (all: readonly Recorded[]) => boolean) =>
    new Promise<void>((resolve) => {
      wake = () => predicate(received) && resolve();
      wake();
    });
  const close = async () => {
    for (const client of server.clients) client.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { server, received, arrival, close, port: (server.address() as AddressInfo).port };
};

describe("ws://", () => {
  test("streams inspection events to a WebSocket inspector", async () => {
    const inspector = await receiver();
    try {
      const system = await startSystem({ layers: [{ id: "dense1", seeds: 2 }], inspect: `ws://127.0.0.1:${inspector.port}` });
      try {
        await system.transition("dense1", 0, "GERMINATED");
        await inspector.arrival((all) => all.some((e) => e.type === "@xstate.snapshot" && e.snapshot?.value === "GERMINATED"));
      } finally {
        await system.close();
      }
      const seed0 = sessionOf(inspector.received, "seed-0");
      expect(inspector.received).toContainEqual(expect.objectContaining({ type: "@xstate.event", sessionId: seed0, event: expect.objectContaining({ type: "to.GERMINATED" }) }));
    } finally {
      await inspector.close();
    }
  });
});

describe("ws://, nobody listening yet", () => {
  /** A port nothing listens on (yet): one the OS just handed out and took back. */
  const freePort = async (): Promise<number> => {
    const probe = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((resolve) => probe.on("listening", () => resolve()));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    return port;
  };

  test("a receiver that connects late is told of every actor of a 4 x 64 system, and of no session it was not told of (regression: 66 of 260)", async () => {
    const port = await freePort();
    const warnings = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const system = await startSystem({ layers: ["a", "b", "c", "d"].map((id) => ({ id, seeds: 64 })), inspect: `ws://127.0.0.1:${port}` });
    try {
      for (const id of ["a", "b", "c", "d"]) await system.transition(id, 5, "GERMINATED");
      const inspector = await receiver(port);
      const registered = () => new Set(inspector.received.filter((e) => e.type === "@xstate.actor").map((e) => e.sessionId));
      try {
        await inspector.arrival(() => registered().size >= 260);
        expect(registered().size).toBe(260);
        const told = registered();
        expect(inspector.received.filter((e) => e.type !== "@xstate.actor").every((e) => told.has(e.sessionId))).toBe(true);
        // The late receiver sees each seed as it is now, not as it was registered.
        const seed5 = inspector.received.filter((e) => e.type === "@xstate.actor" && e.name === "seed-5");
        expect(seed5.map((e) => e.snapshot?.value)).toEqual(["GERMINATED", "GERMINATED", "GERMINATED", "GERMINATED"]);
      } finally {
        await inspector.close();
      }
      // Said once, not once per retry.
      expect(warnings.mock.calls.filter((c) => String(c[0]).includes("no Stately inspector")).length).toBe(1);
    } finally {
      await system.close();
      warnings.mockRestore();
    }
  }, 30_000);

  test("stopped before its connection attempt even failed, it still says once that nothing was delivered (regression: a fast process said nothing)", async () => {
    const port = await freePort();
    const lines: string[] = [];
    const socket = new InspectorSocket(`ws://127.0.0.1:${port}`, { warn: (line) => lines.push(line) });
    socket.start();
    socket.send({ type: "@xstate.actor", sessionId: "x:0", name: "seed-0", createdAt: "0", _version: "0", rootId: "x:0", id: null, snapshot: { status: "active" } } as never);
    await socket.stop();
    expect(lines).toEqual([`esper: no Stately inspector at ws://127.0.0.1:${port} (stopped before any inspector answered; 1 actor registration(s) were not delivered)`]);
  });

  test("a process whose inspector nobody listens to exits as soon as its work is done (regression: it never exited)", async () => {
    const port = await freePort();
    const script = [
      `import { startSystem } from "./src/runtime/system.ts";`,
      `const system = await startSystem({ layers: [{ id: "L", seeds: 4 }], inspect: "ws://127.0.0.1:${port}" });`,
      `await system.transition("L", 1, "GERMINATED");`,
      `await system.close();`,
      `console.log("closed");`,
    ].join("\n");
    const { spawn } = await import("node:child_process");
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: join(__dirname, "..", ".."), stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    // Still running after this, it is held by something (the old adapter retried every 5 s, forever): killed, it fails below.
    const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    try {
      const code = await exited;
      expect(out).toContain("closed");
      expect(code, `exit code (null: killed, still running 20 s on)\n${err}`).toBe(0);
      expect(err.match(/no Stately inspector/g)?.length).toBe(1);
    } finally {
      clearTimeout(killer);
    }
  }, 30_000);
});

describe("off unless asked", () => {
  test.each([undefined, "", "   "])("inspectionFrom(%j) is off", (spec) => {
    vi.stubEnv("ESPER_INSPECT", "");
    expect(inspectionFrom(spec)).toBeNull();
  });

  test("an empty inspect in the config turns inspection off even when ESPER_INSPECT is set: no file is created", async () => {
    const path = join(dir, "should-not-exist.jsonl");
    vi.stubEnv("ESPER_INSPECT", `file:${path}`);
    const system = await startSystem({ layers: [{ id: "dense1", seeds: 1 }], inspect: "" });
    await system.transition("dense1", 0, "GERMINATED");
    await system.close();
    expect(existsSync(path)).toBe(false);
  });

  test("with ESPER_INSPECT unset, the default is off and a system runs without an inspector", async () => {
    vi.stubEnv("ESPER_INSPECT", undefined);
    expect(process.env.ESPER_INSPECT).toBeUndefined();
    expect(inspectionFrom()).toBeNull();
    const system = await startSystem({ layers: [{ id: "dense1", seeds: 1 }] });
    expect(await system.transition("dense1", 0, "GERMINATED")).toMatchObject({ code: "ok" });
    await system.close();
  });
});
