/**
 * Ordering `causal`: a command that names the command it depends on (`metadata.depends_on`, of
 * its layer or of `metadata.depends_on_layer`) is applied only after that one was answered; one
 * whose dependency never comes is answered `timeout`, naming it. Under `partition` (the default)
 * the dependency is not looked at.
 */
import { afterEach, describe, expect, test } from "vitest";
import { lifecycleCommand } from "../../src/protocol/make.ts";
import type { CommandResult } from "../../src/protocol/messages.ts";
import { startSystem, type RunningSystem } from "../../src/runtime/system.ts";

let system: RunningSystem | undefined;
afterEach(async () => {
  await system?.close();
  system = undefined;
});

const command = (layer: string, seed: number, dependsOn?: { id: string; layer?: string }, timeoutMs = 5_000) =>
  lifecycleCommand({
    layer_id: layer,
    seed_id: seed,
    target_state: "GERMINATED",
    timeout_ms: timeoutMs,
    ...(dependsOn ? { metadata: { depends_on: dependsOn.id, ...(dependsOn.layer ? { depends_on_layer: dependsOn.layer } : {}) } } : {}),
  });

describe("causal ordering", () => {
  test("a command to layer b that depends on one to layer a waits for it, however late it is sent", async () => {
    system = await startSystem({ layers: [{ id: "a", seeds: 2 }, { id: "b", seeds: 2 }], ordering: "causal", inspect: "" });
    const first = command("a", 0);
    const order: string[] = [];
    const note = (name: string) => (r: CommandResult) => (order.push(name), r);
    const dependent = system.send(command("b", 0, { id: first.message_id, layer: "a" })).then(note("b"));
    await new Promise((r) => setTimeout(r, 150));
    expect(order).toEqual([]); // still waiting: its dependency was not even sent
    expect(system.layer("b").seeds()[0]!.state).toBe("DORMANT");
    const sent = system.send(first).then(note("a"));
    expect((await dependent).code).toBe("ok");
    expect((await sent).code).toBe("ok");
    expect(order).toEqual(["a", "b"]);
  });

  test("a dependency that never comes: answered timeout, naming it, and not applied; the layer goes on", async () => {
    system = await startSystem({ layers: [{ id: "a", seeds: 2 }], ordering: "causal", inspect: "" });
    const result = await system.send(command("a", 0, { id: "never-sent" }, 200));
    expect(result).toMatchObject({ success: false, code: "timeout", details: { depends_on: "never-sent", depends_on_layer: "a" } });
    expect(result.error).toMatch(/its dependency never-sent \(layer a\) was not answered within its timeout_ms \(200 ms\)/);
    expect(system.layer("a").seeds()[0]!.state).toBe("DORMANT");
    expect((await system.send(command("a", 1))).code).toBe("ok");
  });

  test("a dependency earlier in the same layer's stream is already answered: no wait", async () => {
    system = await startSystem({ layers: [{ id: "a", seeds: 2 }], ordering: "causal", inspect: "" });
    const first = command("a", 0);
    const [one, two] = await Promise.all([system.send(first), system.send(command("a", 1, { id: first.message_id }, 1_000))]);
    expect([one.code, two.code]).toEqual(["ok", "ok"]);
  });

  test("under partition (the default) a named dependency is not waited for", async () => {
    system = await startSystem({ layers: [{ id: "a", seeds: 2 }], inspect: "" });
    expect((await system.send(command("a", 0, { id: "never-sent" }, 200))).code).toBe("ok");
  });
});
