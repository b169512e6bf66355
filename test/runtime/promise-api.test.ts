/**
 * The Promise forms of what esper opens: a client and Tamiyo beside startSystem, each closed by
 * its own `close()` (and by `await using`), with Effect nowhere in the caller's code.
 */
import { describe, expect, it } from "vitest";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import { ClientClosedError, startClient } from "../../src/client/client.ts";
import { lifecycleCommand } from "../../src/protocol/make.ts";
import { startSystem } from "../../src/runtime/system.ts";
import { startTamiyo } from "../../src/tamiyo/tamiyo.ts";

describe("startClient", () => {
  it("sends to a system's layer on the same bus and awaits the answer; once closed, send rejects with ClientClosedError", async () => {
    const bus = new MemoryBus();
    await using system = await startSystem({ layers: [{ id: "dense1", seeds: 4 }], bus, inspect: "" });
    const client = await startClient(bus);
    const result = await client.send(lifecycleCommand({ layer_id: "dense1", seed_id: 2, target_state: "GERMINATED" }));
    expect(result).toMatchObject({ success: true, code: "ok" });
    expect(system.layer("dense1").seeds()[2]!.state).toBe("GERMINATED");
    const refused = await client.send(lifecycleCommand({ layer_id: "dense1", seed_id: 2, target_state: "FOSSILIZED" }));
    expect(refused).toMatchObject({ success: false, code: "invalid_transition" });
    await client.close();
    await client.close(); // a second close is harmless
    await expect(client.send(lifecycleCommand({ layer_id: "dense1", seed_id: 1, target_state: "GERMINATED" }))).rejects.toBeInstanceOf(ClientClosedError);
  });
});

describe("startTamiyo", () => {
  it("steers a system from Promise code: a round germinates where the layer is dead, and close() stops her", async () => {
    const bus = new MemoryBus();
    await using system = await startSystem({ layers: [{ id: "hidden", seeds: 4 }], bus, inspect: "" });
    const profile = { layerId: "hidden", numSeeds: 4, hostParams: 10_000, blueprints: [{ id: "residual_mlp", params: 100 }] };
    const tamiyo = await startTamiyo({ bus, link: system, layers: [profile], config: { strategy: "aggressive", maxActiveSeeds: 1 } });
    await system.reportMetrics("hidden", { 1: { sparsity: 1, gradient_norm: 0 }, 2: { sparsity: 0.1, gradient_norm: 1 } } as never);
    const decided = await tamiyo.round();
    expect(decided.map((d) => [d.kind, d.seedId])).toEqual([["germinate", 1]]);
    expect(system.layer("hidden").seeds()[1]!.state).toBe("GERMINATED");
    await tamiyo.close();
  });
});
