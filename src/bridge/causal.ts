/**
 * Causal ordering (BridgeOptions.ordering `causal`, docs/protocol.md): a command that names the
 * command it depends on (`metadata.depends_on`, of this layer or of `metadata.depends_on_layer`)
 * is applied only once that one was answered: stored in its layer's dedupe table, or earlier in
 * the same batch. The layer waits for it, reading nothing newer meanwhile; one whose dependency is
 * still unanswered when its own `timeout_ms` runs out is answered `timeout`, naming what it
 * waited for.
 */
import { Effect } from "effect";
import type { Bus } from "../bus/bus.ts";
import type { Command } from "../protocol/messages.ts";
import type { Streams } from "../protocol/streams.ts";
import type { Admission } from "./admit.ts";
import { layerKeys, type LayerKeys } from "./store.ts";

/** The command `command` waits for, if it names one. */
export const dependencyOf = (command: Command, layerId: string): { readonly id: string; readonly layerId: string } | undefined => {
  const id = command.metadata?.depends_on;
  if (typeof id !== "string" || id === "") return undefined;
  const on = command.metadata?.depends_on_layer;
  return { id, layerId: typeof on === "string" && on !== "" ? on : layerId };
};

export interface CausalContext {
  readonly layerId: string;
  readonly keys: LayerKeys;
  readonly names: Streams;
  /** The layer's clock, ms. */
  readonly now: () => number;
  /** How often a waiting command looks again (BridgeOptions.dependencyPollMs). */
  readonly pollMs: number;
}

/** The admissions of a batch, each applied one waiting until its dependency was answered, or refused `timeout`. */
export const awaitDependencies = (bus: Bus, admissions: readonly Admission[], context: CausalContext): Effect.Effect<Admission[]> =>
  Effect.gen(function* () {
    const { layerId, keys, names, now } = context;
    const out: Admission[] = [];
    const earlier = new Set<string>();
    for (const a of admissions) {
      const dependency = a.kind === "apply" ? dependencyOf(a.command, layerId) : undefined;
      if (a.kind !== "apply" || dependency === undefined || (dependency.layerId === layerId && earlier.has(dependency.id))) {
        if (a.kind === "apply") earlier.add(a.command.message_id);
        out.push(a);
        continue;
      }
      const depKeys = dependency.layerId === layerId ? keys : layerKeys(names, dependency.layerId);
      const deadline = a.command.timestamp * 1000 + a.command.timeout_ms;
      for (;;) {
        const [current, old] = yield* Effect.zip(bus.hmget(depKeys.results, [dependency.id]), bus.hmget(depKeys.resultsOld, [dependency.id])).pipe(
          Effect.orElseSucceed((): [readonly (Uint8Array | null)[], readonly (Uint8Array | null)[]] => [[null], [null]]),
        );
        if (current[0] != null || old[0] != null) {
          earlier.add(a.command.message_id);
          out.push(a);
          break;
        }
        if (now() >= deadline) {
          out.push({
            kind: "refuse",
            read: a.read,
            command: a.command,
            code: "timeout",
            error: `its dependency ${dependency.id} (layer ${dependency.layerId}) was not answered within its timeout_ms (${a.command.timeout_ms} ms); not applied`,
            details: { depends_on: dependency.id, depends_on_layer: dependency.layerId },
          });
          break;
        }
        yield* Effect.sleep(Math.min(context.pollMs, Math.max(1, deadline - now())));
      }
    }
    return out;
  });
