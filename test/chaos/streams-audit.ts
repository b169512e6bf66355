/**
 * Reading a chaos run's streams back: follow an event stream into a Ledger, read a stream whole,
 * wait until the workers drained their control streams, and check each seed's stored snapshot
 * against its plan. Shared by the chaos and ownership tests.
 */
import { Effect } from "effect";
import { Redis } from "ioredis";
import type { Entry } from "../../src/bus/bus.ts";
import type { RedisBus } from "../../src/bus/redis-bus.ts";
import { decodeEntry } from "../../src/protocol/entry.ts";
import { GROUPS, type Streams } from "../../src/protocol/streams.ts";
import { decodeSeed } from "../bridge/harness.ts";
import type { CommandPlan } from "./command-plan.ts";
import type { Ledger } from "./ledger.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect);

/** Records every message the event stream gets from now on, through outages. */
export const follow = (bus: RedisBus, stream: string, ledger: Ledger) =>
  Effect.gen(function* () {
    let last = "0-0";
    for (;;) {
      const entries = yield* bus
        .readAfter(stream, last, 1_000, 500)
        .pipe(Effect.catchTag("BusError", (e) => (e.reason === "closed" ? Effect.interrupt : Effect.as(Effect.sleep(100), [] as readonly Entry[]))));
      for (const entry of entries) {
        last = entry.id;
        record(ledger, entry);
      }
    }
  });

export const record = (ledger: Ledger, entry: Entry): void => {
  const decoded = decodeEntry(entry.stream, entry.fields);
  if (decoded._tag !== "Success") throw new Error(`${entry.stream} ${entry.id} does not decode: ${decoded.failure.message}`);
  ledger.record(decoded.success);
};

export const readAll = async (bus: RedisBus, stream: string): Promise<Entry[]> => {
  const all: Entry[] = [];
  for (let start = "-"; ; ) {
    const page = await run(bus.range(stream, start, "+", 2_000));
    all.push(...page);
    if (page.length < 2_000) return all;
    start = `(${page[page.length - 1]!.id}`;
  }
};

/** Waits until the worker has read and acked everything in the control streams. */
export const quiesce = async (url: string, names: Streams, plan: CommandPlan, deadline: number): Promise<void> => {
  const admin = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    const layers = [...new Set(plan.seeds.map((s) => s.layerId))];
    for (;;) {
      const busy: string[] = [];
      for (const layer of layers) {
        const groups = (await admin.xinfo("GROUPS", names.control(layer))) as unknown[][];
        for (const group of groups) {
          const info = Object.fromEntries(Array.from({ length: group.length / 2 }, (_, i) => [String(group[2 * i]), group[2 * i + 1]]));
          if (info.name === GROUPS.kasmina && (Number(info.pending) > 0 || Number(info.lag) > 0)) busy.push(`${layer}: ${info.pending} pending, lag ${info.lag}`);
        }
      }
      if (busy.length === 0) return;
      if (Date.now() > deadline) throw new Error(`the worker did not drain its control streams: ${busy.join("; ")}`);
      await sleep(100);
    }
  } finally {
    admin.disconnect();
  }
};

/** Seeds whose stored snapshot is not the end of their path, or whose history is not exactly their path. */
export const seedsNotAtTheirEnd = async (bus: RedisBus, names: Streams, plan: CommandPlan): Promise<string[]> => {
  const wrong: string[] = [];
  const stored = new Map<string, Readonly<Record<string, Uint8Array>>>();
  for (const seed of plan.seeds) {
    let hash = stored.get(seed.layerId);
    if (hash === undefined) stored.set(seed.layerId, (hash = await run(bus.hgetall(names.state(seed.layerId)))));
    const bytes = hash[String(seed.seedId)];
    if (bytes === undefined) {
      wrong.push(`${seed.layerId}/${seed.seedId}: no snapshot in ${names.state(seed.layerId)}`);
      continue;
    }
    const snapshot = decodeSeed(bytes);
    const walked = snapshot.context.history.map((h) => h.to).join(" ");
    const path = seed.commands.map((c) => c.to).join(" ");
    if (snapshot.state !== seed.finalState || walked !== path) wrong.push(`${seed.layerId}/${seed.seedId}: stored ${snapshot.state}, history [${walked}], planned [${path}]`);
  }
  return wrong;
};
