/**
 * What a command and its answers are to their senders and readers, the same over both buses
 * although in process they travel as objects (protocol/fast/in-process-entry.ts): a command is what it
 * was when sent, what was committed does not change afterwards, an unsigned entry is refused
 * where a key is set, and a rollback leaves no seed actor behind.
 */
import { beforeEach, describe, expect, test } from "vitest";
import { fastPaths } from "../../src/protocol/fast/switch.ts";
import { lifecycle } from "../runtime/commands.ts";
import {
  BUS_KINDS,
  decodeSeed,
  commandFields,
  deadLettersOf,
  openClient,
  openFixture,
  publishCommand,
  drained,
  resultsOf,
  run,
  settled,
  startBridge,
  transitionsOf,
  type Fixture,
} from "./harness.ts";

const seedActors = (host: unknown) =>
  (host as { actor: { getSnapshot(): { context: { seeds: { getSnapshot(): { status: string } }[] } } } }).actor.getSnapshot().context.seeds;

describe.each(BUS_KINDS)("on %s", (kind) => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await openFixture(kind);
  });

  test("a committed seed snapshot keeps what it held at the commit; the layer counts the epochs that pass since", async () => {
    const worker = await startBridge(fx);
    const client = await openClient(fx);
    expect((await client.send(lifecycle("a", 0, "GERMINATED"))).code).toBe("ok");
    worker.host.tick(7);
    const stored = decodeSeed((await run(fx.bus.hgetall(fx.names.state("a"))))["0"]!);
    expect(stored).toMatchObject({ state: "GERMINATED", context: { enteredAt: 0, epoch: 0 } });
    expect(worker.host.epochsInState(0)).toBe(7);
    expect(worker.host.table.row(0).epochsInState).toBe(7);
  });

  test("a command is applied as it was when sent, whatever its sender does with the object afterwards", async () => {
    await startBridge(fx);
    const client = await openClient(fx);
    for (const warm of [false, true]) {
      // Cold: the first send to a layer waits for its follower; warm: it goes out in the same tick.
      const command = lifecycle("a", warm ? 2 : 0, "GERMINATED") as { seed_id: number | null };
      const answer = client.send(command as never);
      command.seed_id = 3;
      expect(await answer).toMatchObject({ code: "ok", seed_id: warm ? 2 : 0 });
    }
  });

  test("an answer read back is the answer committed: in process it is shared, so it is frozen", async () => {
    const worker = await startBridge(fx);
    const client = await openClient(fx);
    const command = lifecycle("a", 0, "GERMINATED");
    const answer = await client.send(command);
    const change = () => void ((answer as { code: string }).code = "internal");
    // Over Redis (and in process with fast paths off) each reader decodes its own copy; in process every reader holds the same object.
    if (fx.bus.inProcess && fastPaths()) expect(change).toThrow(TypeError);
    else change();
    await publishCommand(fx, command);
    await settled(worker, 2);
    expect((await resultsOf(fx, "a", command.message_id)).map((r) => [r.code, r.details.duplicate ?? false])).toEqual([
      ["ok", false],
      ["ok", true],
    ]);
  });

  test("where the layer has an HMAC key, an unsigned command is dead-lettered bad_signature, in process too", async () => {
    const worker = await startBridge(fx, { options: { hmacKey: "deployment-secret" } });
    const client = await openClient(fx);
    const answer = await client.send(lifecycle("a", 0, "GERMINATED"), { timeoutMs: 500 });
    expect(answer).toMatchObject({ code: "timeout", details: { local: true } });
    expect((await deadLettersOf(fx, fx.names.dlq("a"))).map((d) => d.code)).toEqual(["bad_signature"]);
    expect(worker.host.seed(0).state).toBe("DORMANT");
  });

  test("a batch rolled back because it held a copy of an applied command leaves no seed actor running behind", async () => {
    const worker = await startBridge(fx);
    const client = await openClient(fx);
    const applied = lifecycle("a", 0, "GERMINATED");
    expect((await client.send(applied)).code).toBe("ok");
    const replaced = seedActors(worker.host)[1]!;
    const fresh = lifecycle("a", 1, "GERMINATED");
    // One batch: a new command and a copy of an applied one; the commit refuses it (conflict) and the batch is settled again.
    await run(
      fx.bus.publishMany([
        { stream: fx.names.control("a"), fields: commandFields(fx, fresh) },
        { stream: fx.names.control("a"), fields: commandFields(fx, applied) },
      ]),
    );
    await settled(worker, 3);
    await drained(fx, fx.names.control("a"));
    expect(await transitionsOf(fx, "a", fresh.message_id)).toHaveLength(1);
    expect(seedActors(worker.host)[1]).not.toBe(replaced);
    expect(replaced.getSnapshot().status).toBe("stopped");
  });
});
