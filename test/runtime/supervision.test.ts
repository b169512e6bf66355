/**
 * Supervision: XState has none (a seed actor that throws is dead), so the host restarts a seed
 * from its last persisted snapshot and reports it. The failing command is the only casualty.
 */
import { describe, expect, test } from "vitest";
import { emit } from "xstate";
import type { SeedState } from "../../machines/lifecycle.ts";
import { seedMachine } from "../../machines/seed.ts";
import { LayerHost } from "../../src/runtime/layer-host.ts";
import { batch, blueprint, lifecycle, placeSeed } from "./commands.ts";

const L = "dense1";

/** A seed whose `entered` hook throws on entering GRAFTING, `times` times (forever by default). */
const faultyOnGrafting = (times = Number.POSITIVE_INFINITY) => {
  let left = times;
  return seedMachine.provide({
    actions: {
      entered: (_, params: { from: SeedState; to: SeedState }) => {
        if (params.to === "GRAFTING" && left-- > 0) throw new Error("blueprint weights are NaN");
      },
    },
  });
};

interface Restart {
  readonly seedId: number;
  readonly error: unknown;
  readonly restoredState: SeedState;
}

const hostWith = (seedLogic = faultyOnGrafting(), numSeeds = 3) => {
  const restarts: Restart[] = [];
  const host = new LayerHost({
    layerId: L,
    numSeeds,
    seedLogic,
    onSeedRestart: (seedId, error, restoredState) => restarts.push({ seedId, error, restoredState }),
  });
  return { host, restarts };
};

/** Seed 0 trained long enough, with a good loss, to graft. */
const readyToGraft = (host: LayerHost) => {
  placeSeed(host, 0, "TRAINING");
  host.tick(100);
};

describe("a seed that throws while entering GRAFTING", () => {
  test("the command gets a failed result with code internal, and the process goes on", () => {
    const { host } = hostWith();
    readyToGraft(host);
    const command = lifecycle(L, 0, "GRAFTING", { metrics: { reconstruction_loss: 0.001 } });
    const { result, transitions } = host.apply(command);
    expect(result).toMatchObject({ correlation_id: command.message_id, success: false, code: "internal", seed_id: 0 });
    expect(result.error).toMatch(/seed 0 crashed and was restarted from its last snapshot \(TRAINING\): blueprint weights are NaN/);
    expect(transitions).toEqual([]);
  });

  test("the restart is reported with the seed, the error and the state it was restored to", () => {
    const { host, restarts } = hostWith();
    readyToGraft(host);
    host.apply(lifecycle(L, 0, "GRAFTING", { metrics: { reconstruction_loss: 0.001 } }));
    expect(restarts).toHaveLength(1);
    expect(restarts[0]).toMatchObject({ seedId: 0, restoredState: "TRAINING" });
    expect(String(restarts[0]!.error)).toContain("blueprint weights are NaN");
    expect(host.restartCount).toBe(1);
  });

  test("the seed is back in its last snapshot: TRAINING, with its epochs, in the persisted seed and the state table", () => {
    const { host } = hostWith();
    readyToGraft(host);
    host.apply(lifecycle(L, 0, "GRAFTING", { metrics: { reconstruction_loss: 0.001 } }));
    expect(host.seed(0)).toMatchObject({ state: "TRAINING", context: { enteredAt: 0, alpha: 0 } });
    expect(host.table.row(0)).toMatchObject({ state: "TRAINING", epochsInState: 100 });
    expect(host.epochsInState(0)).toBe(100);
  });

  // Regression: the host went on listening to the dead actor, so every later command to a
  // restarted seed was answered `internal` ("the seed gave no answer") while the live seed did
  // move, and the state table and persisted snapshot silently fell behind it.
  test("the restarted seed accepts further commands, and its answers reach the result and the table", () => {
    const { host } = hostWith();
    readyToGraft(host);
    host.apply(lifecycle(L, 0, "GRAFTING", { metrics: { reconstruction_loss: 0.001 } }));
    const { result, transitions } = host.apply(lifecycle(L, 0, "CANCELLED", { reason: "give up" }));
    expect(result).toMatchObject({ success: true, code: "ok", details: { from_state: "TRAINING", to_state: "CANCELLED" } });
    expect(transitions).toMatchObject([{ seed_id: 0, from_state: "TRAINING", to_state: "CANCELLED" }]);
    expect(host.seed(0).state).toBe("CANCELLED");
    expect(host.table.row(0).state).toBe("CANCELLED");
  });

  test("a seed that crashed once grafts on the retry, judged with the epochs it had", () => {
    const { host, restarts } = hostWith(faultyOnGrafting(1));
    readyToGraft(host);
    const graft = () => host.apply(lifecycle(L, 0, "GRAFTING", { metrics: { reconstruction_loss: 0.001 } })).result;
    expect(graft().code).toBe("internal");
    expect(graft()).toMatchObject({ code: "ok", details: { from_state: "TRAINING", to_state: "GRAFTING" } });
    expect(host.table.row(0).state).toBe("GRAFTING");
    expect(restarts).toHaveLength(1);
  });

  test("a seed that keeps crashing is restarted each time and stays where it was", () => {
    const { host, restarts } = hostWith();
    readyToGraft(host);
    for (let i = 0; i < 3; i++) expect(host.apply(lifecycle(L, 0, "GRAFTING", { force: true })).result.code).toBe("internal");
    expect(restarts.map((r) => r.restoredState)).toEqual(["TRAINING", "TRAINING", "TRAINING"]);
    expect(host.restartCount).toBe(3);
    expect(host.seed(0).state).toBe("TRAINING");
  });

  test("the other seeds are untouched and keep working", () => {
    const { host } = hostWith();
    readyToGraft(host);
    placeSeed(host, 1, "GERMINATED");
    host.apply(lifecycle(L, 0, "GRAFTING", { force: true }));
    expect(host.seeds().map((s) => s.state)).toEqual(["TRAINING", "GERMINATED", "DORMANT"]);
    expect(host.apply(lifecycle(L, 2, "GERMINATED")).result.code).toBe("ok");
    expect(host.apply(lifecycle(L, 1, "TRAINING")).result.code).toBe("ok");
  });

  test("a crash inside a batch answers the batch internal; the rest of the batch still applies", () => {
    const { host } = hostWith();
    readyToGraft(host);
    const { result } = host.apply(
      batch([lifecycle(L, 1, "GERMINATED"), lifecycle(L, 0, "GRAFTING", { metrics: { reconstruction_loss: 0.001 } })], { atomic: false, stopOnError: false }),
    );
    expect(result.code).toBe("internal");
    expect(host.seeds().map((s) => s.state)).toEqual(["TRAINING", "GERMINATED", "DORMANT"]);
    expect(host.apply(lifecycle(L, 0, "CANCELLED")).result.code).toBe("ok");
  });

  test("a crash inside a batch: each line says applied only when its seed said so; orders to the crashed seed are not applied", () => {
    const { host } = hostWith();
    readyToGraft(host);
    const { result } = host.apply(
      batch(
        [
          lifecycle(L, 1, "GERMINATED"),
          lifecycle(L, 0, "GRAFTING", { metrics: { reconstruction_loss: 0.001 } }),
          blueprint(L, 0, "bp-after-crash"),
          lifecycle(L, 2, "GERMINATED"),
        ],
        { atomic: false, stopOnError: false },
      ),
    );
    expect(result.code).toBe("internal");
    expect(result.details.results).toMatchObject([
      { index: 0, applied: true, code: "ok" },
      { index: 1, applied: false, success: false, code: "internal", error: expect.stringMatching(/seed 0 crashed/) },
      { index: 2, applied: false, success: false, code: "internal" },
      { index: 3, applied: true, code: "ok" },
    ]);
    expect(host.seed(0).context.blueprintId).toBeNull();
    expect(host.seeds().map((s) => s.state)).toEqual(["TRAINING", "GERMINATED", "GERMINATED"]);
  });

  test("a healthy seed machine is never restarted on the same walk", () => {
    const { host, restarts } = hostWith(seedMachine);
    readyToGraft(host);
    expect(host.apply(lifecycle(L, 0, "GRAFTING", { metrics: { reconstruction_loss: 0.001 } })).result.code).toBe("ok");
    expect(restarts).toEqual([]);
    expect(host.restartCount).toBe(0);
  });
});

describe("an answer that cannot be built", () => {
  test("apply still returns: an internal answer that says the seed moved, and the changed seed to persist", () => {
    // A seed logic whose accepted outcome carries a reason no message may hold (the real one clips it).
    const loud = seedMachine.provide({
      actions: {
        accepted: emit(({ context }, p: { from: SeedState; to: SeedState }) => ({
          type: "outcome" as const,
          seedId: context.seedId,
          commandId: null,
          from: p.from,
          to: p.to,
          forced: false,
          reason: "r".repeat(70_000),
          metrics: {},
          epochsInFrom: 0,
          at: null,
          ok: true as const,
        })),
      },
    });
    const { host } = hostWith(loud, 2);
    const applied = host.apply(lifecycle(L, 1, "GERMINATED"));
    expect(applied.result).toMatchObject({ success: false, code: "internal", details: { moved: 1 } });
    expect(applied.result.error).toMatch(/handled this command \(1 seed\(s\) moved\) but its answer could not be built/);
    expect([...applied.changed]).toEqual([1]);
    expect(host.seed(1).state).toBe("GERMINATED");
  });
});

describe("stopping a host", () => {
  // The host makes its seeds itself (not as the layer's spawned children, whose stop XState does
  // one at a time over a copy of all children: O(n^2)), so it must stop them itself too.
  test("stops every seed actor, restarted ones included, and the layer", () => {
    const { host } = hostWith(faultyOnGrafting(1), 3);
    placeSeed(host, 1, "TRAINING");
    expect(host.apply(lifecycle(L, 1, "GRAFTING", { force: true })).result.code).toBe("internal");
    const seeds = () => (host as unknown as { actor: { getSnapshot(): { status: string; context: { seeds: { getSnapshot(): { status: string } }[] } } } }).actor.getSnapshot();
    expect(seeds().context.seeds.map((s) => s.getSnapshot().status)).toEqual(["active", "active", "active"]);
    host.stop();
    expect(seeds().status).toBe("stopped");
    expect(seeds().context.seeds.map((s) => s.getSnapshot().status)).toEqual(["stopped", "stopped", "stopped"]);
  });
});
