import { describe, expect, it } from "vitest";
import { BusError, type EntryFields } from "../../src/bus/bus.ts";
import { Outbox, type Offer } from "../../src/bus/outbox.ts";

const fields = (n: number): EntryFields => ({ data: new Uint8Array([n]), type: "T", seq: String(n) });
const command = (n: number): Offer => ({ stream: "p.control.layer.{L}", fields: fields(n), maxLen: 100, droppable: false });
const telemetry = (n: number): Offer => ({ stream: "p.telemetry.layer.{L}", fields: fields(n), maxLen: 100, droppable: true });

describe("Outbox", () => {
  it("gives back a batch that failed to the front of the queue, so entries are written in publish order", () => {
    const outbox = new Outbox(10, 10);
    const outcomes: (readonly string[] | BusError)[] = [];
    for (let n = 1; n <= 4; n++) outbox.offer([command(n)], [""], (o) => outcomes.push(o));
    const first = outbox.take(2);
    outbox.offer([command(5)], [""], (o) => outcomes.push(o));
    outbox.settle(first, [undefined, undefined]); // Redis went away mid-write
    const order = outbox.take(10).map((e) => e.fields.seq);
    expect(order).toEqual(["1", "2", "3", "4", "5"]);
    expect(outcomes).toEqual([]);
  });

  it("resolves a publishMany once all its entries are written, with ids in its own order", () => {
    const outbox = new Outbox(10, 10);
    let outcome: readonly string[] | BusError | undefined;
    outbox.offer([command(1), telemetry(2), command(3)], ["", "", ""], (o) => (outcome = o));
    const batch = outbox.take(10);
    expect(batch.map((e) => e.fields.seq)).toEqual(["1", "3", "2"]); // commands before telemetry
    outbox.settle(batch, ["1-0", "1-1", "1-2"]);
    expect(outcome).toEqual(["1-0", "", "1-1"]);
  });

  it("refuses a publish past its bound, counting entries being written, and never half-queues a publishMany", () => {
    const outbox = new Outbox(3, 10);
    outbox.offer([command(1), command(2)], ["", ""], () => {});
    outbox.take(1);
    const refused = outbox.offer([command(3), command(4)], ["", ""], () => {});
    expect(refused).toBeInstanceOf(BusError);
    expect((refused as BusError).reason).toBe("outbox_full");
    expect(outbox.durableSize).toBe(2);
    expect(outbox.offer([command(3)], [""], () => {})).not.toBeInstanceOf(BusError);
  });

  it("drops the oldest telemetry at its own bound and counts it, without touching commands", () => {
    const outbox = new Outbox(1, 2);
    outbox.offer([command(0)], [""], () => {});
    for (let n = 1; n <= 5; n++) expect(outbox.offer([telemetry(n)], [""], () => {})).toBeUndefined();
    expect(outbox.dropped).toBe(3);
    expect(outbox.take(10).map((e) => e.fields.seq)).toEqual(["0", "4", "5"]);
  });

  it("fails the publisher of an entry Redis refused, and every waiting publisher at close", () => {
    const outbox = new Outbox(10, 10);
    const outcomes: (readonly string[] | BusError)[] = [];
    outbox.offer([command(1)], [""], (o) => outcomes.push(o));
    outbox.offer([command(2)], [""], (o) => outcomes.push(o));
    const refusal = new BusError({ reason: "command_failed", message: "WRONGTYPE" });
    outbox.settle(outbox.take(1), [refusal]);
    expect(outbox.close(new BusError({ reason: "closed", message: "closed" }))).toBe(1);
    expect(outcomes.map((o) => (o instanceof BusError ? o.reason : o))).toEqual(["command_failed", "closed"]);
  });
});
