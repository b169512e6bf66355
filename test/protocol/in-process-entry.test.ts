import { Result } from "effect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setFastPaths } from "../../src/protocol/fast/switch.ts";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import { decodeEntry, encodeEntry, encodeEntryInProcess } from "../../src/protocol/entry.ts";
import type { Message } from "../../src/protocol/messages.ts";
import { newMessageId } from "../../src/protocol/message-id.ts";
import { streams } from "../../src/protocol/streams.ts";
import { SAMPLES } from "./samples.ts";

const CONTROL = streams("morphogenetic").control("layer_1");
const command = SAMPLES.LifecycleTransitionCommand as Message;

describe("an entry made in process (encodeEntryInProcess)", () => {
  // What the fast path does; with fast paths off it is encodeEntry (the next describe).
  let before = true;
  beforeAll(() => void (before = setFastPaths(true)));
  afterAll(() => void setFastPaths(before));

  it("carries its message: a reader gets that very object, with no bytes made", () => {
    let encodes = 0;
    const counting = { stream: CONTROL, trusted: true, get codec() {
      encodes++;
      return "msgpack" as const;
    } };
    const fields = encodeEntryInProcess(command, counting);
    encodes = 0;
    const decoded = decodeEntry(CONTROL, fields);
    expect(Result.isSuccess(decoded) && decoded.success).toBe(command);
    expect(fields.type).toBe("LifecycleTransitionCommand");
    expect(fields.enc).toBe("msgpack");
    expect(encodes).toBe(0);
  });

  it("makes its bytes when they are read, the same bytes encodeEntry makes, signed when a key is set", () => {
    const options = { stream: CONTROL, codec: "json" as const, hmacKey: "k" };
    const fields = encodeEntryInProcess(command, { ...options, trusted: false });
    const plain = encodeEntry(command, options);
    expect(Buffer.from(fields.data).toString()).toBe(Buffer.from(plain.data).toString());
    expect(fields.sig).toBe(plain.sig);
    // Spread (a dead letter, a replay) copies the bytes and drops the attachment: what comes back is read from bytes.
    const copy = { ...fields };
    expect(Object.keys(copy).sort()).toEqual(["data", "enc", "sig", "type"]);
    const again = decodeEntry(CONTROL, copy, { hmacKey: "k" });
    expect(Result.isSuccess(again) && again.success).toEqual(command);
    expect(Result.isSuccess(again) && again.success).not.toBe(command);
  });

  it("checks the schema of a message it was not told to trust, and refuses a bad one with invalid_message", () => {
    const bad = { ...command, seed_id: "three" } as unknown as Message;
    const refused = decodeEntry(CONTROL, encodeEntryInProcess(bad, { stream: CONTROL, trusted: false }));
    expect(Result.isFailure(refused) && refused.failure.code).toBe("invalid_message");
    expect(Result.isFailure(refused) && refused.failure.message).toContain("seed_id");
    const unknown = decodeEntry(CONTROL, encodeEntryInProcess({ message_type: "Nope", version: "1.0" } as unknown as Message, { stream: CONTROL, trusted: false }));
    expect(Result.isFailure(unknown) && unknown.failure.code).toBe("invalid_message");
  });

  it("travels through the MemoryBus as it is, and lists as a dead letter with its bytes", async () => {
    const bus = new MemoryBus();
    const fields = encodeEntryInProcess(command, { stream: CONTROL, trusted: false });
    const { Effect } = await import("effect");
    await Effect.runPromise(bus.publish(CONTROL, fields));
    const [entry] = await Effect.runPromise(bus.range(CONTROL));
    expect(entry!.fields).toBe(fields);
    const letter = { ...entry!.fields, code: "internal" };
    const decoded = decodeEntry(CONTROL, letter);
    expect(Result.isSuccess(decoded) && decoded.success).toEqual(command);
  });
});

describe("an entry made in process with fast paths off", () => {
  it("is encodeEntry's entry: plain bytes, no message attached, checked by its reader", () => {
    const before = setFastPaths(false);
    try {
      const options = { stream: CONTROL, codec: "msgpack" as const, hmacKey: "k" };
      const fields = encodeEntryInProcess(command, { ...options, trusted: true });
      const plain = encodeEntry(command, options);
      expect({ ...fields }).toEqual({ ...plain });
      const decoded = decodeEntry(CONTROL, fields, { hmacKey: "k" });
      expect(Result.isSuccess(decoded) && decoded.success).not.toBe(command);
      expect(Result.isSuccess(decoded) && decoded.success).toEqual(command);
    } finally {
      setFastPaths(before);
    }
  });
});

describe("newMessageId", () => {
  it("makes version 4 UUIDs, all different", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const id = newMessageId();
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      seen.add(id);
    }
    expect(seen.size).toBe(20_000);
  });
});
