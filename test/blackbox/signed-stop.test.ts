/**
 * Black-box finding 5: a captured signed EmergencyStop could be replayed once it had left the
 * dedupe window: a stop never expires, and its signature carried no freshness. A signed command
 * must now be written (its entry id is Redis's clock at XADD) within a minute of its own signed
 * timestamp; written again later, it is refused `bad_signature`, whatever the dedupe window holds.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import type { WorkerProcess } from "../support/worker-process.ts";
import { emergencyStop, keysOf, lifecycle, readAll, resultOf, resume, xadd } from "./outside.ts";
import { privateRedis } from "./private-redis.ts";

const KEY = "a-deployment-secret-of-some-length";
const env = privateRedis();
let worker: WorkerProcess;
beforeAll(async () => {
  const keyFile = join(mkdtempSync(join(tmpdir(), "esper-key-")), "hmac.key");
  writeFileSync(keyFile, KEY);
  worker = env.worker({ namespace: "signed", layers: ["L"], seeds: 8, args: ["--hmac-key-file", keyFile] });
  await worker.start(undefined);
}, 60_000);

const k = keysOf("signed", "L");

describe("a signed emergency stop", () => {
  test("fresh, it stops the layer; a correctly signed stop from two minutes ago, written now, is refused and stops nothing", async () => {
    const stop = emergencyStop("L");
    await xadd(env.admin, k.control, stop, KEY);
    expect(await resultOf(env.admin, k.events, stop.message_id)).toMatchObject({ code: "ok", details: { stopped: true } });
    const lift = resume("L");
    await xadd(env.admin, k.control, lift, KEY);
    expect(await resultOf(env.admin, k.events, lift.message_id)).toMatchObject({ code: "ok", details: { stopped: false } });

    // A stop signed two minutes ago (captured then, say), never seen by the layer, written again now.
    const captured = emergencyStop("L", { timestamp: Date.now() / 1000 - 120 });
    await xadd(env.admin, k.control, captured, KEY);
    const probe = lifecycle("L", 1, "GERMINATED");
    await xadd(env.admin, k.control, probe, KEY);
    expect(await resultOf(env.admin, k.events, probe.message_id)).toMatchObject({ code: "ok" });
    const letters = await readAll(env.admin, k.dlq);
    expect(letters.map((l) => l.fields.code?.toString())).toEqual(["bad_signature"]);
    expect(letters[0]!.fields.error?.toString()).toMatch(/written \d+ s away from its own timestamp/);
    // Its signature was good, so its id can be attributed: it is answered, and applied nowhere.
    const answer = await resultOf(env.admin, k.events, captured.message_id);
    expect(answer).toMatchObject({ code: "bad_signature", success: false });
  }, 60_000);
});
