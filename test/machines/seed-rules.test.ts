/**
 * The validators as pure functions of (from, to, facts): the graph they check against and what
 * `force` may and may not skip. The machine calls these; here they are pinned on their own.
 */
import { describe, expect, test } from "vitest";
import { DEFAULT_GUARDS, type SeedState } from "../../machines/lifecycle.ts";
import { checkEdge, checkTransition, hasEdge, type SeedFacts } from "../../machines/seed-rules.ts";
import { EDGE_NAMES_BY_HAND, STATES_BY_HAND, TERMINALS_BY_HAND } from "../support/lifecycle-by-hand.ts";

const STATES = STATES_BY_HAND;
const TERMINALS = new Set<SeedState>(TERMINALS_BY_HAND);
const EDGES = new Set(EDGE_NAMES_BY_HAND);

const fresh: SeedFacts = { epochsInState: 0, errorCount: 0, metrics: {} };

describe("the graph", () => {
  test("hasEdge is true on exactly the 16 edges", () => {
    const found = STATES.flatMap((from) => STATES.filter((to) => hasEdge(from, to)).map((to) => `${from}->${to}`));
    expect(new Set(found)).toEqual(EDGES);
  });

  test.each(STATES)("checkEdge from %s: ok on its edges, terminal_state from a terminal, invalid_transition otherwise", (from) => {
    for (const to of STATES) {
      const verdict = checkEdge(from, to);
      if (TERMINALS.has(from)) expect(verdict).toMatchObject({ ok: false, code: "terminal_state" });
      else if (EDGES.has(`${from}->${to}`)) expect(verdict).toEqual({ ok: true });
      else expect(verdict).toMatchObject({ ok: false, code: "invalid_transition" });
    }
  });
});

describe("checkTransition", () => {
  test("force never adds an edge: every non-edge is refused, forced or not", () => {
    for (const from of STATES) {
      for (const to of STATES) {
        if (EDGES.has(`${from}->${to}`)) continue;
        expect(checkTransition(from, to, fresh, DEFAULT_GUARDS, true).ok, `${from} -> ${to} forced`).toBe(false);
      }
    }
  });

  test("force skips every validator on the 16 edges", () => {
    for (const edge of EDGES) {
      const [from, to] = edge.split("->") as [SeedState, SeedState];
      expect(checkTransition(from, to, fresh, DEFAULT_GUARDS, true), edge).toEqual({ ok: true });
    }
  });

  test("unforced, the structure is judged before the validators", () => {
    expect(checkTransition("DORMANT", "FOSSILIZED", fresh, DEFAULT_GUARDS, false)).toMatchObject({ code: "invalid_transition" });
    expect(checkTransition("TRAINING", "GRAFTING", fresh, DEFAULT_GUARDS, false)).toMatchObject({ code: "guard_failed", guard: "min_epochs" });
  });

  test("the error count the seed keeps and the one reported count alike: the larger one is judged", () => {
    const facts: SeedFacts = { epochsInState: 30, errorCount: 6, metrics: { error_count: 1 } };
    expect(checkTransition("EVALUATING", "CULLED", facts, DEFAULT_GUARDS, false)).toEqual({ ok: true });
    expect(checkTransition("EVALUATING", "CULLED", { ...facts, errorCount: 1 }, DEFAULT_GUARDS, false)).toMatchObject({
      guard: "cull_condition",
      values: { error_count: 1 },
    });
  });
});
