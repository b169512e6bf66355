/**
 * The machines as JSON machine configs (the shape `createMachine` takes, targets as sibling
 * state names), which Stately Studio imports and XState can run again. Built from each machine's
 * own definition, so it cannot drift from the code.
 */
import { createActor, type AnyStateMachine } from "xstate";
import { controllerMachine } from "../../machines/controller.ts";
import { layerMachine } from "../../machines/layer.ts";
import { seedMachine } from "../../machines/seed.ts";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface NodeDefinition {
  readonly id: string;
  readonly key: string;
  readonly type: string;
  readonly initial?: { readonly target: ReadonlyArray<{ readonly key: string } | string> };
  readonly states: Readonly<Record<string, NodeDefinition>>;
  readonly on: Readonly<Record<string, ReadonlyArray<TransitionDefinition>>>;
  readonly entry: readonly unknown[];
  readonly exit: readonly unknown[];
  readonly invoke: ReadonlyArray<{ readonly src: unknown; readonly id: string }>;
  readonly tags: readonly string[];
  readonly description?: string;
}

interface TransitionDefinition {
  readonly target?: readonly string[];
  readonly guard?: unknown;
  readonly actions: readonly unknown[];
  readonly reenter?: boolean;
}

/** Drops functions (inline guards/actions) and keeps named ones with their params. */
const named = (item: unknown): Json | undefined => {
  if (typeof item === "string") return item;
  if (item && typeof item === "object" && "type" in item && typeof (item as { type: unknown }).type === "string") {
    const { type, params } = item as { type: string; params?: unknown };
    return params && typeof params === "object" ? { type, params: JSON.parse(JSON.stringify(params)) as Json } : type;
  }
  // An inline function has no name to export; the machines declare none (the export test holds them to it).
  return typeof item === "function" ? "inline" : undefined;
};

const lastSegment = (target: string): string => target.slice(target.lastIndexOf(".") + 1);

/** Targets are written relative to the node holding the transition: a sibling by name, a child of the root as `.child`. */
const transitionConfig = (t: TransitionDefinition, fromRoot: boolean): Json => {
  const out: Record<string, Json> = {};
  const relative = (target: string) => (fromRoot ? `.${lastSegment(target)}` : lastSegment(target));
  if (t.target && t.target.length > 0) out.target = t.target.length === 1 ? relative(t.target[0]!) : t.target.map(relative);
  if (t.guard !== undefined) out.guard = named(t.guard) ?? "inline";
  const actions = t.actions.map(named).filter((a): a is Json => a !== undefined);
  if (actions.length > 0) out.actions = actions;
  if (t.reenter) out.reenter = true;
  return out;
};

const nodeConfig = (node: NodeDefinition, root: boolean): Record<string, Json> => {
  const out: Record<string, Json> = {};
  if (root) out.id = node.id;
  if (node.description) out.description = node.description;
  const initial = node.initial?.target[0];
  if (initial !== undefined) out.initial = typeof initial === "string" ? lastSegment(initial) : initial.key;
  if (node.tags.length > 0) out.tags = [...node.tags];
  if (node.type === "final") out.type = "final";
  const entry = node.entry.map(named).filter((a): a is Json => a !== undefined);
  if (entry.length > 0) out.entry = entry;
  const invokeIds = new Set(node.invoke.map((i) => i.id));
  if (node.invoke.length > 0) {
    out.invoke = node.invoke.map((i) => {
      const done = node.on[`xstate.done.actor.${i.id}`];
      const error = node.on[`xstate.error.actor.${i.id}`];
      return {
        src: typeof i.src === "string" ? i.src : i.id,
        ...(done ? { onDone: done.map((t) => transitionConfig(t, false)) } : {}),
        ...(error ? { onError: error.map((t) => transitionConfig(t, false)) } : {}),
      };
    });
  }
  const on: Record<string, Json> = {};
  for (const [event, transitions] of Object.entries(node.on)) {
    // An invoke's completion transitions belong to its `invoke` entry above.
    const invokeId = event.replace(/^xstate\.(done|error)\.actor\./, "");
    if (invokeId !== event && invokeIds.has(invokeId)) continue;
    on[event] = transitions.map((t) => transitionConfig(t, root));
  }
  if (Object.keys(on).length > 0) out.on = on;
  const states = Object.entries(node.states);
  if (states.length > 0) out.states = Object.fromEntries(states.map(([k, v]) => [k, nodeConfig(v, false)]));
  return out;
};

/**
 * A machine's JSON config. Every guard and action is named (the machines declare none inline), so
 * `createMachine(config).provide(machine.implementations)` behaves as the machine does. `input`:
 * what the initial context is computed from, written out as the config's `context`.
 */
export const machineConfig = (machine: AnyStateMachine, input?: unknown): Record<string, Json> => {
  // Through JSON first: the definition holds StateNode objects, whose JSON form is their id.
  const config = nodeConfig(JSON.parse(JSON.stringify(machine.toJSON())) as NodeDefinition, true);
  // The initial snapshot of an actor that is never started: no entry action runs, nothing is spawned.
  const context = JSON.parse(JSON.stringify(createActor(machine, { input }).getSnapshot().context ?? {})) as Json;
  return { id: config.id!, context, ...config };
};

/** The machines esper runs, by the file name they are exported to. */
export const MACHINES = { seed: seedMachine, layer: layerMachine, controller: controllerMachine } as const;

/** The input each exported config's context is computed from: seed 0 with the default guards, a layer with no seeds, a controller's defaults. */
export const EXPORT_INPUTS = { seed: { seedId: 0 }, layer: { layerId: "layer0", numSeeds: 0, seeds: [] }, controller: {} } as const;

/** Every machine's config, keyed by the file name it is written to. */
export const machineConfigs = (): Record<keyof typeof MACHINES, Record<string, Json>> => ({
  seed: machineConfig(seedMachine, EXPORT_INPUTS.seed),
  layer: machineConfig(layerMachine, EXPORT_INPUTS.layer),
  controller: machineConfig(controllerMachine, EXPORT_INPUTS.controller),
});

/**
 * A machine as a Mermaid state diagram (`stateDiagram-v2`), for docs and offline viewing: one
 * line per transition, `from --> to : event [guard]`, nested states as composite states.
 * Transitions without a target (actions only) are left out: a diagram shows where a machine can go.
 */
export const machineMermaid = (machine: AnyStateMachine): string => {
  const config = machineConfig(machine);
  const lines = ["stateDiagram-v2"];
  const label = (event: string, t: Record<string, Json>): string => {
    const guard = t["guard"];
    const name = typeof guard === "string" ? guard : guard && typeof guard === "object" && !Array.isArray(guard) ? String(guard["type"]) : null;
    // A colon ends a Mermaid label: written as its entity.
    return `${event}${name ? ` [${name}]` : ""}`.replace(/:/g, "#58;");
  };
  const targetsOf = (t: Record<string, Json>): string[] => {
    const target = t["target"];
    return (target === undefined ? [] : Array.isArray(target) ? target : [target]).map((x) => String(x).replace(/^\./, ""));
  };
  /** `from`: the states a transition of this `on` leaves (one, or every state for the machine's own). */
  const edges = (from: readonly string[], on: Json | undefined, indent: string): void => {
    if (!on || typeof on !== "object" || Array.isArray(on)) return;
    for (const [event, transitions] of Object.entries(on)) {
      for (const t of transitions as Record<string, Json>[]) {
        for (const to of targetsOf(t)) for (const f of from) if (f !== to) lines.push(`${indent}${f} --> ${to} : ${label(event, t)}`);
      }
    }
  };
  const walk = (states: Record<string, Json>, initial: Json | undefined, indent: string): void => {
    if (typeof initial === "string") lines.push(`${indent}[*] --> ${initial}`);
    for (const [name, node] of Object.entries(states)) {
      const n = node as Record<string, Json>;
      const children = n["states"] as Record<string, Json> | undefined;
      if (children && Object.keys(children).length > 0) {
        lines.push(`${indent}state ${name} {`);
        walk(children, n["initial"], `${indent}  `);
        lines.push(`${indent}}`);
      }
      if (n["type"] === "final") lines.push(`${indent}${name} --> [*]`);
      edges([name], n["on"], indent);
      // An invoked actor's completion moves the machine too.
      for (const invoke of (n["invoke"] ?? []) as Record<string, Json>[]) {
        edges([name], { [`done ${String(invoke["src"])}`]: invoke["onDone"] ?? [], [`error ${String(invoke["src"])}`]: invoke["onError"] ?? [] }, indent);
      }
    }
  };
  const states = (config["states"] ?? {}) as Record<string, Json>;
  walk(states, config["initial"], "  ");
  // Transitions of the machine itself can be taken from any of its states.
  edges(Object.keys(states), config["on"], "  ");
  return `${lines.join("\n")}\n`;
};
