/**
 * `esper machines --out DIR`: the machines as JSON configs for Stately Studio. The seed config
 * read back must draw exactly the lifecycle: 11 states and the 16 edges, written out here.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { createActor, createMachine, fromPromise, type AnyEventObject, type AnyStateMachine } from "xstate";
import { controllerMachine } from "../../machines/controller.ts";
import { layerMachine } from "../../machines/layer.ts";
import { DEFAULT_GUARDS } from "../../machines/lifecycle.ts";
import { requestTransition, seedMachine } from "../../machines/seed.ts";
import { EXPORT_INPUTS } from "../../src/runtime/definitions.ts";
import { runCli } from "../../src/cli/program.ts";
import { EDGE_NAMES_BY_HAND } from "../support/lifecycle-by-hand.ts";

const EDGES = EDGE_NAMES_BY_HAND;

interface TransitionJson {
  readonly target?: string | string[];
  readonly guard?: unknown;
  readonly actions?: unknown[];
}
interface NodeJson {
  readonly id?: string;
  readonly initial?: string;
  readonly tags?: string[];
  readonly on?: Record<string, TransitionJson[]>;
  readonly states?: Record<string, NodeJson>;
  readonly invoke?: Array<{ src: string; onDone?: TransitionJson[]; onError?: TransitionJson[] }>;
}

let dir: string;
let log: ReturnType<typeof vi.spyOn>;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "esper-machines-"));
  log = vi.spyOn(console, "log").mockImplementation(() => {});
});
afterEach(() => {
  vi.restoreAllMocks();
  rmSync(dir, { recursive: true, force: true });
});

const written = async (): Promise<Record<string, NodeJson>> => {
  expect(await runCli(["machines", "--out", dir])).toBe(0);
  return Object.fromEntries(["seed", "layer", "controller"].map((name) => [name, JSON.parse(readFileSync(join(dir, `${name}.json`), "utf8")) as NodeJson]));
};

const targetsOf = (t: TransitionJson): string[] => (t.target === undefined ? [] : Array.isArray(t.target) ? t.target : [t.target]);

describe("esper machines --out DIR", () => {
  test("writes seed.json, layer.json and controller.json and says where", async () => {
    await written();
    expect(readdirSync(dir).sort()).toEqual(["controller.json", "layer.json", "seed.json"]);
    const lines = log.mock.calls.map((c: unknown[]) => String(c[0]));
    for (const name of ["seed", "layer", "controller"]) expect(lines).toContain(`wrote ${join(dir, `${name}.json`)}`);
  });

  test("creates the directory when it does not exist", async () => {
    const nested = join(dir, "a", "b");
    expect(await runCli(["machines", "--out", nested])).toBe(0);
    expect(readdirSync(nested).sort()).toEqual(["controller.json", "layer.json", "seed.json"]);
  });

  test("without --out it explains itself and exits 2, writing nothing", async () => {
    const error = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    expect(await runCli(["machines"])).toBe(2);
    expect(error.mock.calls.map((c) => String(c[0])).join("")).toMatch(/required option '--out <dir>' not specified[\s\S]*add --help/);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("seed.json has exactly the 16 edges of the lifecycle", async () => {
    const { seed } = await written();
    const pairs: string[] = [];
    for (const [state, node] of Object.entries(seed.states ?? {})) {
      for (const transitions of Object.values(node.on ?? {})) {
        for (const t of transitions) for (const target of targetsOf(t)) pairs.push(`${state}->${target}`);
      }
    }
    expect(pairs.sort()).toEqual([...EDGES].sort());
    // Root-level events (tick, metrics, error, blueprint) change context only.
    for (const transitions of Object.values(seed.on ?? {})) for (const t of transitions) expect(targetsOf(t)).toEqual([]);
  });

  test("every edge in seed.json is guarded by the named validator with its from and to", async () => {
    const { seed } = await written();
    const taken = seed.states!.TRAINING!.on!["to.GRAFTING"]!;
    expect(taken[0]).toMatchObject({ target: "GRAFTING", guard: { type: "validated", params: { from: "TRAINING", to: "GRAFTING" } } });
    expect(taken[1]).toMatchObject({ actions: [{ type: "rejected", params: { from: "TRAINING", to: "GRAFTING" } }] });
  });

  test("createMachine(JSON.parse(seed.json)) has the 11 lifecycle states, starting DORMANT, 4 tagged terminal", async () => {
    const { seed } = await written();
    const machine = createMachine(JSON.parse(readFileSync(join(dir, "seed.json"), "utf8")));
    expect(Object.keys(machine.states).sort()).toEqual(
      ["DORMANT", "GERMINATED", "TRAINING", "GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING", "FOSSILIZED", "CULLED", "CANCELLED", "ROLLED_BACK"].sort(),
    );
    expect(seed.id).toBe("seed");
    expect(seed.initial).toBe("DORMANT");
    const terminal = Object.entries(seed.states!).filter(([, n]) => n.tags?.includes("terminal")).map(([k]) => k);
    expect(terminal.sort()).toEqual(["CANCELLED", "CULLED", "FOSSILIZED", "ROLLED_BACK"]);
  });

  test("layer.json runs and stops; controller.json has Tamiyo's five states and invokes the policy", async () => {
    const { layer, controller } = await written();
    expect(Object.keys(layer.states ?? {}).sort()).toEqual(["running", "stopped"]);
    expect(layer.states!.running!.on!.emergency_stop!.map(targetsOf)).toEqual([[], ["stopped"], []]); // unknown seed refused, whole layer stops, one seed stops
    expect(layer.states!.stopped!.on!.resume![0]).toMatchObject({ target: "running" });
    expect(Object.keys(controller.states ?? {}).sort()).toEqual(["commanding", "deciding", "degraded", "emergency", "observing"]);
    expect(controller.states!.deciding!.invoke).toMatchObject([{ src: "policy", onError: [{ target: "observing" }] }]);
    expect(controller.on!.emergency![0]).toMatchObject({ target: ".emergency" });
    for (const name of ["layer.json", "controller.json"]) expect(() => createMachine(JSON.parse(readFileSync(join(dir, name), "utf8")))).not.toThrow();
  });
});

describe("an exported machine runs when given the same implementations", () => {
  const read = (name: string) => JSON.parse(readFileSync(join(dir, `${name}.json`), "utf8"));
  /** Runs `events` through an actor of `logic` and returns each step's state, context and emitted events. */
  const trace = (logic: AnyStateMachine, events: readonly AnyEventObject[], input?: unknown) => {
    const actor = createActor(logic, input === undefined ? {} : { input });
    const emitted: unknown[] = [];
    actor.on("*", (e) => emitted.push(e));
    actor.start();
    const steps = events.map((event) => {
      emitted.length = 0;
      actor.send(event);
      const snapshot = actor.getSnapshot();
      return { value: snapshot.value, context: JSON.parse(JSON.stringify(snapshot.context)), emitted: JSON.parse(JSON.stringify(emitted)) };
    });
    actor.stop();
    return steps;
  };

  test("every guard and action is named, and each config keeps its machine's context", async () => {
    const all = await written();
    expect(JSON.stringify(all)).not.toContain('"inline"');
    const seed = read("seed");
    expect(seed.context).toMatchObject({ seedId: 0, blueprintId: null, strategy: "linear", alpha: 0, epoch: 0, errorCount: 0, history: [] });
    expect(seed.context.config).toEqual(JSON.parse(JSON.stringify(DEFAULT_GUARDS)));
    expect(read("layer").context).toMatchObject({ layerId: "layer0", numSeeds: 0, seeds: [], epoch: 0, stopReason: null });
    expect(read("controller").context).toMatchObject({ outstanding: {}, telemetry: [], telemetryLimit: 1000, pending: [], emergencyReason: null });
  });

  test("seed.json: the same lifecycle, step by step, as seedMachine (accepted, refused by a guard, no edge, terminal)", async () => {
    await written();
    const exported = createMachine(read("seed")).provide({ guards: seedMachine.implementations.guards, actions: seedMachine.implementations.actions } as never);
    const events: AnyEventObject[] = [
      { type: "metrics", metrics: { reconstruction_loss: 0.5 } },
      requestTransition("TRAINING"),
      requestTransition("GERMINATED", { reason: "grow" }),
      requestTransition("TRAINING"),
      { type: "tick", epochs: 120 },
      requestTransition("GRAFTING", { metrics: { reconstruction_loss: 0.5 } }),
      requestTransition("GRAFTING", { metrics: { reconstruction_loss: 0.001 } }),
      { type: "blueprint", blueprintId: "b2", strategy: "momentum", commandId: "c1" },
      { type: "error" },
      requestTransition("ROLLED_BACK", { force: true }),
      requestTransition("DORMANT"),
      { type: "blueprint", blueprintId: "b3", commandId: "c2" },
    ];
    const original = trace(seedMachine, events, { seedId: 0 });
    expect(trace(exported, events)).toEqual(original);
    // It did walk the lifecycle: accepted, guard-refused and terminal steps are all in the trace.
    expect(original.map((s) => s.value)).toEqual(["DORMANT", "DORMANT", "GERMINATED", "TRAINING", "TRAINING", "TRAINING", "GRAFTING", "GRAFTING", "GRAFTING", "ROLLED_BACK", "ROLLED_BACK", "ROLLED_BACK"]);
    expect(original[5]!.emitted).toMatchObject([{ ok: false, code: "guard_failed" }]);
  });

  test("layer.json and controller.json: the same steps as layerMachine and controllerMachine", async () => {
    await written();
    const layer = createMachine(read("layer")).provide({ guards: layerMachine.implementations.guards, actions: layerMachine.implementations.actions } as never);
    const layerEvents: AnyEventObject[] = [
      { type: "tick", epochs: 3 },
      { type: "command", order: { commandId: "c1", seedId: 4, target: "GERMINATED", force: false, reason: "", metrics: {} } },
      { type: "emergency_stop", commandId: "s1", seedId: null, reason: "operator" },
      { type: "resume", commandId: "r1" },
      { type: "restored", epoch: 9, stopReason: "from the store" },
      { type: "restored", epoch: 10, stopReason: null },
    ];
    const layerOriginal = trace(layerMachine, layerEvents, EXPORT_INPUTS.layer);
    expect(trace(layer, layerEvents)).toEqual(layerOriginal);
    expect(layerOriginal.map((s) => s.value)).toEqual(["running", "running", "stopped", "running", "stopped", "running"]);

    // The policy's input is computed by a function, which JSON cannot hold: a policy that reads none runs the same in both.
    const policy = fromPromise(async () => [{ commandId: "d1", layerId: "dense1", timeoutMs: 5 }]);
    const controller = createMachine(read("controller")).provide({ guards: controllerMachine.implementations.guards, actions: controllerMachine.implementations.actions, actors: { policy } } as never);
    const run = async (logic: AnyStateMachine) => {
      const actor = createActor(logic.provide({ actors: { policy } } as never), { input: EXPORT_INPUTS.controller }).start();
      const emitted: string[] = [];
      actor.on("*", (e) => emitted.push(e.type));
      const states: unknown[] = [];
      actor.send({ type: "telemetry", report: { layer: "dense1" } });
      actor.send({ type: "decide" });
      await new Promise((r) => setTimeout(r, 10));
      states.push(actor.getSnapshot().value);
      actor.send({ type: "dispatched", at: 100 });
      actor.send({ type: "clock", now: 200 });
      actor.send({ type: "emergency", reason: "alerts" });
      states.push(actor.getSnapshot().value);
      actor.send({ type: "recover" });
      const snapshot = actor.getSnapshot();
      actor.stop();
      return { states: [...states, snapshot.value], context: JSON.parse(JSON.stringify(snapshot.context)), emitted };
    };
    const controllerOriginal = await run(controllerMachine);
    expect(await run(controller)).toEqual(controllerOriginal);
    expect(controllerOriginal).toMatchObject({ states: ["commanding", "emergency", "observing"], emitted: ["dispatch", "timeout"], context: { timedOut: 1, emergencyReason: null } });
  });
});

describe("esper machines --format mermaid", () => {
  test("writes a state diagram per machine; the seed's has exactly the 16 edges of the lifecycle and starts in DORMANT", async () => {
    expect(await runCli(["machines", "--out", dir, "--format", "mermaid"])).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(["controller.mmd", "layer.mmd", "seed.mmd"]);
    const seed = readFileSync(join(dir, "seed.mmd"), "utf8").split("\n");
    expect(seed[0]).toBe("stateDiagram-v2");
    expect(seed).toContain("  [*] --> DORMANT");
    const edges = seed.flatMap((l) => {
      const m = /^\s+(\w+) --> (\w+) : /.exec(l);
      return m ? [`${m[1]}->${m[2]}`] : [];
    });
    expect(edges.sort()).toEqual([...EDGES].sort());
    const controller = readFileSync(join(dir, "controller.mmd"), "utf8");
    expect(controller).toContain("deciding --> commanding : done policy [hasDecisions]");
  });

  test("refuses a format it does not know, exit 2", async () => {
    const error = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    expect(await runCli(["machines", "--out", dir, "--format", "svg"])).toBe(2);
    expect(error.mock.calls.map((c) => String(c[0])).join("")).toMatch(/Allowed choices are json, mermaid/);
  });
});
