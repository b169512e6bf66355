/**
 * Whatever lands on a layer's control stream, the bridge settles it and reads on: random bytes,
 * random maps, near-valid commands with a field of the wrong type, huge strings, random `type`,
 * `enc` and `sig` fields, valid commands. Each input ends as exactly one CommandResult or one
 * dead letter, never as a crash, and afterwards the layer in memory is the layer in storage and
 * a valid command still works. Many runs on the embedded bus, fewer on Redis.
 */
import { fc, test } from "@fast-check/vitest";
import { expect } from "vitest";
import { deflateSync } from "node:zlib";
import { RESULT_CODES, SEED_STATES, type SeedState } from "../../machines/lifecycle.ts";
import type { EntryFields } from "../../src/bus/bus.ts";
import { encodeBody } from "../../src/protocol/codec.ts";
import { decodeEntry, signEntry } from "../../src/protocol/entry.ts";
import { emergencyStopCommand, resumeCommand } from "../../src/protocol/make.ts";
import type { Command as CommandMessage } from "../../src/protocol/messages.ts";
import { batch, blueprint, lifecycle } from "../runtime/commands.ts";
import { deadLettersOf, openClient, openFixture, publishRaw, resultsOf, run, startBridge, waitFor, type BusKind, type Fixture, type RunningBridge } from "./harness.ts";

const SEEDS = 16;
/** Valid fuzz commands name seeds 0-7, 99 or all; the check after the fuzz uses this one, wherever it ended. */
const SPARE_SEED = 15;
const COMMAND_TYPES = ["LifecycleTransitionCommand", "BlueprintUpdateCommand", "BatchCommand", "EmergencyStopCommand", "ResumeCommand"];
const ENCS = ["msgpack", "json", "msgpack+deflate", "json+deflate"] as const;

type Fields = Record<string, Uint8Array | string>;

const seedId = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 7 }) }, { weight: 1, arbitrary: fc.constantFrom(99, null) });
const target = fc.oneof(fc.constantFrom(...SEED_STATES), fc.constantFrom(...SEED_STATES).map((s) => s.toLowerCase()));

/** Commands that decode: the layer itself must answer them. */
const validCommand: fc.Arbitrary<CommandMessage> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ seed: seedId, target, force: fc.boolean() }).map(({ seed, target, force }) => lifecycle("a", seed, target, { force })) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 7 }).map((seed) => blueprint("a", seed, "bp-1")) },
  {
    weight: 1,
    arbitrary: fc
      .array(fc.record({ seed: fc.integer({ min: 0, max: 7 }), target }), { minLength: 1, maxLength: 3 })
      .chain((orders) => fc.boolean().map((atomic) => batch(orders.map((o) => lifecycle("a", o.seed, o.target)), { atomic }))),
  },
  { weight: 1, arbitrary: fc.constant(null).map(() => emergencyStopCommand({ layer_id: "a", seed_id: null, reason: "fuzz", source: "fuzz" })) },
  { weight: 1, arbitrary: fc.constant(null).map(() => resumeCommand({ layer_id: "a", source: "fuzz" })) },
);

const encoded = (value: unknown, enc: (typeof ENCS)[number] | "reference" | "reference+zlib"): { data: Uint8Array; enc?: string } => {
  if (enc === "reference") return { data: encodeBody(value, "reference") };
  if (enc === "reference+zlib") return { data: deflateSync(encodeBody(value, "reference")) };
  return { data: encodeBody(value, enc), enc };
};

const anyEnc = fc.constantFrom(...ENCS, "reference" as const, "reference+zlib" as const);

const asFields = (type: string | undefined, body: { data: Uint8Array; enc?: string }, extra: Fields = {}): Fields => ({
  ...(type === undefined ? {} : { type }),
  data: body.data,
  ...(body.enc === undefined ? {} : { enc: body.enc }),
  ...extra,
});

const randomType = fc.oneof(fc.constantFrom(...COMMAND_TYPES, "CommandResult", "Heartbeat", ""), fc.string({ maxLength: 80 }));

type Drawn = { readonly kind: string; readonly fields: Fields };

/** Random bytes under random type/enc/sig fields. */
const randomBytes: fc.Arbitrary<Drawn> = fc
  .record({
    data: fc.uint8Array({ maxLength: 300 }),
    type: fc.option(randomType, { nil: undefined }),
    enc: fc.option(fc.oneof(fc.constantFrom(...ENCS), fc.string({ maxLength: 20 })), { nil: undefined }),
    sig: fc.option(fc.oneof(fc.string({ maxLength: 70 }), fc.stringMatching(/^[0-9a-f]{64}$/)), { nil: undefined }),
  })
  .map(({ data, type, enc, sig }) => ({ kind: "bytes", fields: asFields(type, { data, ...(enc === undefined ? {} : { enc }) }, sig === undefined ? {} : { sig }) }));

/** Random maps and values, encoded by any codec. */
const randomMap: fc.Arbitrary<Drawn> = fc
  .record({ value: fc.oneof(fc.object({ maxDepth: 3 }), fc.anything({ maxDepth: 2 })), type: randomType, enc: anyEnc })
  .map(({ value, type, enc }) => ({ kind: "map", fields: asFields(type, encoded(value, enc)) }));

/** A valid command with one field replaced by anything (wrong types, nulls) or removed. */
const nearValid: fc.Arbitrary<Drawn> = fc
  .record({
    command: validCommand,
    field: fc.constantFrom("message_id", "timestamp", "version", "source", "layer_id", "seed_id", "target_state", "force", "priority", "timeout_ms", "parameters", "commands", "message_type", "reason", "metadata"),
    value: fc.oneof(fc.anything({ maxDepth: 1 }), fc.constant(undefined)),
    typeMatches: fc.boolean(),
    enc: anyEnc,
  })
  .map(({ command, field, value, typeMatches, enc }) => {
    const broken: Record<string, unknown> = { ...command, [field]: value };
    if (value === undefined) delete broken[field];
    return { kind: `near-valid ${command.message_type} with ${field}`, fields: asFields(typeMatches ? command.message_type : "LifecycleTransitionCommand", encoded(broken, enc)) };
  });

/** Huge strings: in a reason, as the message_id, the source or the type; some past the 1 MiB limit. */
const hugeStrings: fc.Arbitrary<Drawn> = fc
  .record({
    command: validCommand,
    size: fc.oneof(fc.integer({ min: 10_000, max: 200_000 }), fc.integer({ min: 1_040_000, max: 1_060_000 })),
    where: fc.constantFrom("reason", "message_id", "source", "type"),
  })
  .map(({ command, size, where }) => {
    const huge = "\u00e9x".repeat(Math.ceil(size / 3));
    if (where === "type") return { kind: "huge type", fields: asFields(huge, encoded(command, "msgpack")) };
    return { kind: `huge ${where}`, fields: asFields(command.message_type, encoded({ ...command, [where]: huge }, "msgpack")) };
  });

/** Valid commands under any codec, some with a sig that a deployment without a key ignores. */
const valid: fc.Arbitrary<Drawn> = fc.record({ command: validCommand, enc: anyEnc, signed: fc.boolean() }).map(({ command, enc, signed }) => {
  const body = encoded(command, enc);
  return { kind: `valid ${command.message_type}`, fields: asFields(command.message_type, body, signed ? { sig: signEntry("some-key", "x", command.message_type, body.data) } : {}) };
});

/** Entries without a data field. */
const noData: fc.Arbitrary<Drawn> = randomType.map((type) => ({ kind: "no-data", fields: { type, enc: "msgpack" } }));

const entry = fc.oneof(
  { weight: 3, arbitrary: randomBytes },
  { weight: 3, arbitrary: randomMap },
  { weight: 4, arbitrary: nearValid },
  { weight: 1, arbitrary: hugeStrings },
  { weight: 4, arbitrary: valid },
  { weight: 1, arbitrary: noData },
);

/**
 * Counts what the bridge has written so far: CommandResults on the event stream, letters on the
 * DLQ. Every result must also be one a client can read: one that does not decode would leave its
 * sender waiting for nothing.
 */
const outcomeCounter = (fx: Fixture) => {
  let after = "0-0";
  let results = 0;
  return async () => {
    const events = fx.names.events("a");
    for (;;) {
      const page = await run(fx.bus.readAfter(events, after, 1_000, 0));
      if (page.length === 0) break;
      for (const e of page) {
        after = e.id;
        if (String(e.fields.type) !== "CommandResult") continue;
        results++;
        const decoded = decodeEntry(events, e.fields);
        if (decoded._tag === "Failure") throw new Error(`the bridge wrote a CommandResult no client can read: ${decoded.failure.message}`);
      }
    }
    return { results, letters: await run(fx.bus.length(fx.names.dlq("a"))) };
  };
};

/** A forced edge from each state (force skips validators, never the graph); none from terminal ones. */
const NEXT: Readonly<Record<SeedState, SeedState | null>> = {
  DORMANT: "GERMINATED",
  GERMINATED: "TRAINING",
  TRAINING: "CANCELLED",
  GRAFTING: "ROLLED_BACK",
  STABILIZATION: "ROLLED_BACK",
  EVALUATING: "ROLLED_BACK",
  FINE_TUNING: "ROLLED_BACK",
  FOSSILIZED: null,
  CULLED: null,
  CANCELLED: null,
  ROLLED_BACK: null,
};

const fuzz = async (kind: BusKind, numRuns: number) => {
  const fx = await openFixture(kind);
  let worker: RunningBridge = await startBridge(fx, { numSeeds: SEEDS });
  const count = outcomeCounter(fx);
  let published = 0;
  let before = { results: 0, letters: 0 };
  const kinds = new Map<string, number>();

  await fc.assert(
    fc.asyncProperty(entry, async ({ kind: what, fields }) => {
      kinds.set(what.split(" ")[0]!, (kinds.get(what.split(" ")[0]!) ?? 0) + 1);
      await publishRaw(fx, fx.names.control("a"), fields as EntryFields);
      published++;
      await waitFor(`the bridge to settle entry ${published} (${what})`, () => worker.bridge.stats().entries >= published, 5_000, 1);
      const now = await count();
      // Every input ends as one CommandResult, one dead letter, or both (a bad command that can be
      // attributed is answered and lettered): never neither, never two of a kind.
      const gained = { results: now.results - before.results, letters: now.letters - before.letters };
      before = now;
      expect(gained.results).toBeLessThanOrEqual(1);
      expect(gained.letters).toBeLessThanOrEqual(1);
      expect(gained.results + gained.letters).toBeGreaterThanOrEqual(1);
    }),
    { numRuns },
  );

  // Every kind of input was tried; nothing was set aside as a bridge bug; codes are the protocol's.
  expect([...kinds.keys()].sort()).toEqual(["bytes", "huge", "map", "near-valid", "no-data", "valid"]);
  const letters = await deadLettersOf(fx, fx.names.dlq("a"));
  expect(letters.filter((l) => !["invalid_message", "too_large", "bad_signature"].includes(l.code))).toEqual([]);
  const answers = await resultsOf(fx, "a");
  const codes = answers.map((r) => r.code);
  expect(codes.length).toBeLessThanOrEqual(published);
  expect(codes.length + letters.length).toBeGreaterThanOrEqual(published);
  expect(codes.filter((c) => !(RESULT_CODES as readonly string[]).includes(c) || c === "internal")).toEqual([]);

  // The layer in memory is the layer in storage: a new worker restores exactly it.
  const inMemory = { seeds: [...worker.host.seeds()], stopped: worker.host.isStopped };
  await worker.close();
  worker = await startBridge(fx, { numSeeds: SEEDS });
  expect({ seeds: worker.host.seeds(), stopped: worker.host.isStopped }).toEqual(inMemory);

  // And a valid command still works.
  const client = await openClient(fx);
  expect((await client.send(resumeCommand({ layer_id: "a", source: "after-fuzz" }))).code).toBe("ok");
  const state = worker.host.seed(SPARE_SEED).state;
  const next = NEXT[state];
  const result = await client.send(lifecycle("a", SPARE_SEED, next ?? "GERMINATED", { force: true }));
  expect(result).toMatchObject(next === null ? { code: "terminal_state" } : { code: "ok", details: { from_state: state, to_state: next } });
  return published;
};

test("on MemoryBus, 500 random entries each end as one CommandResult or one dead letter, and the bridge reads on", async () => {
  expect(await fuzz("MemoryBus", 500)).toBe(500);
}, 60_000);

test("on RedisBus, 60 random entries each end as one CommandResult or one dead letter, and the bridge reads on", async () => {
  expect(await fuzz("RedisBus", 60)).toBe(60);
}, 60_000);
