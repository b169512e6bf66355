/**
 * The chaos run's commands, built up front so that every re-send of a command carries the same
 * bytes, hence the same `message_id`, as a real client's retry does.
 *
 * Each seed walks a path of forced transitions to a terminal state, one command per edge. A
 * command applied twice would be refused on its second application (the seed has moved on, or
 * is terminal), so a double application shows as a second, non-duplicate result; a lost one
 * leaves its seed short of the end of its path.
 */
import type { EntryFields } from "../../src/bus/bus.ts";
import type { SeedState } from "../../machines/lifecycle.ts";
import { encodeEntry } from "../../src/protocol/entry.ts";
import { lifecycleCommand } from "../../src/protocol/make.ts";
import type { Streams } from "../../src/protocol/streams.ts";

/** DORMANT to FOSSILIZED: 7 edges. */
export const LONG_PATH: readonly SeedState[] = ["GERMINATED", "TRAINING", "GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING", "FOSSILIZED"];
/** DORMANT to CANCELLED: 2 edges, to make the total come out exact. */
export const SHORT_PATH: readonly SeedState[] = ["GERMINATED", "CANCELLED"];

export interface PlannedCommand {
  readonly messageId: string;
  readonly layerId: string;
  readonly seedId: number;
  readonly from: SeedState;
  readonly to: SeedState;
  readonly stream: string;
  readonly fields: EntryFields;
}

export interface SeedPlan {
  readonly layerId: string;
  readonly seedId: number;
  readonly commands: readonly PlannedCommand[];
  readonly finalState: SeedState;
}

export interface CommandPlan {
  readonly seeds: readonly SeedPlan[];
  readonly commands: readonly PlannedCommand[];
  readonly byId: ReadonlyMap<string, PlannedCommand>;
  /** Seeds per layer (the worker's --seeds). */
  readonly seedsPerLayer: number;
}

/**
 * Exactly `total` commands over `layers`: as many seeds as possible walk LONG_PATH, the
 * remainder is made up by seeds walking SHORT_PATH. `total` must be reachable that way.
 */
export const planCommands = (names: Streams, layers: readonly string[], total: number): CommandPlan => {
  let longSeeds = Math.floor(total / LONG_PATH.length);
  while (longSeeds >= 0 && (total - longSeeds * LONG_PATH.length) % SHORT_PATH.length !== 0) longSeeds--;
  if (longSeeds < 0) throw new RangeError(`${total} commands cannot be split into paths of ${LONG_PATH.length} and ${SHORT_PATH.length}`);
  const paths = [
    ...Array.from({ length: longSeeds }, () => LONG_PATH),
    ...Array.from({ length: (total - longSeeds * LONG_PATH.length) / SHORT_PATH.length }, () => SHORT_PATH),
  ];
  const seedsPerLayer = Math.ceil(paths.length / layers.length);
  // Ten minutes: no outage of this run comes near it, so no command is refused as overdue (that would be another test).
  const timeoutMs = 600_000;
  const seeds = paths.map((path, index): SeedPlan => {
    const layerId = layers[index % layers.length]!;
    const seedId = Math.floor(index / layers.length);
    const stream = names.control(layerId);
    const commands = path.map((to, step): PlannedCommand => {
      const command = lifecycleCommand({ layer_id: layerId, seed_id: seedId, target_state: to, force: true, timeout_ms: timeoutMs, reason: "chaos", source: "esper.chaos" });
      return { messageId: command.message_id, layerId, seedId, from: step === 0 ? "DORMANT" : path[step - 1]!, to, stream, fields: encodeEntry(command, { stream }) };
    });
    return { layerId, seedId, commands, finalState: path[path.length - 1]! };
  });
  const commands = seeds.flatMap((s) => s.commands);
  return { seeds, commands, byId: new Map(commands.map((c) => [c.messageId, c])), seedsPerLayer };
};
