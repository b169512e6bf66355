import type { Bus, EntryFields } from "../bus/bus.ts";
import type { Runner } from "./runner.ts";

/**
 * Sends made in the same turn of the event loop go out together: one publishMany (one pipeline
 * on Redis), not one publish and one fiber each. When the batch is refused, each entry goes again
 * on its own, so only the sends the bus refuses fail; those the batch did write are then written
 * twice, and the layer answers the copy as a duplicate of the first answer.
 */
export class SendBatcher {
  private outgoing: Array<{ readonly stream: string; readonly fields: EntryFields; readonly refused: (error: unknown) => void }> = [];

  constructor(
    private readonly bus: Bus,
    private readonly run: Runner,
    /** MAXLEN of control streams: null, they are trimmed by what their groups are done with. */
    private readonly maxLen: number | null,
  ) {}

  /** Queues an entry; `refused` is called if the bus will not take it. */
  send(stream: string, fields: EntryFields, refused: (error: unknown) => void): void {
    if (this.outgoing.length === 0) queueMicrotask(() => this.flush());
    this.outgoing.push({ stream, fields, refused });
  }

  /** One entry now, outside any batch (a re-send). */
  sendNow(stream: string, fields: EntryFields): Promise<unknown> {
    return this.run.promise(this.bus.publish(stream, fields, this.maxLen));
  }

  private flush(): void {
    const batch = this.outgoing;
    this.outgoing = [];
    const one = (item: (typeof batch)[number]) => void this.sendNow(item.stream, item.fields).then(undefined, item.refused);
    if (batch.length === 1) return one(batch[0]!);
    this.run.promise(this.bus.publishMany(batch, this.maxLen)).then(undefined, () => {
      for (const item of batch) one(item);
    });
  }
}
