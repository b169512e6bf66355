/**
 * How far a bridge has settled each stream it reads, and who waits for an entry to be settled (a
 * system's tick waits until its report is taken in). A bridge that stops releases every waiter:
 * nobody waits on a bridge that will settle nothing more.
 */
import { Deferred, Effect } from "effect";
import { compareStreamIds, parseStreamId } from "../bus/stream-id.ts";

interface Waiter {
  readonly stream: string;
  readonly id: string;
  readonly done: Deferred.Deferred<void>;
}

const atOrBefore = (id: string, through: string): boolean => compareStreamIds(parseStreamId(id)!, parseStreamId(through)!) <= 0;

export class SettledMarks {
  private readonly through = new Map<string, string>();
  private readonly waiters = new Set<Waiter>();
  private stopped = false;

  /** Everything of `stream` up to `id` is settled: its waiters are released. */
  mark(stream: string, id: string): Effect.Effect<void> {
    return Effect.suspend(() => {
      const before = this.through.get(stream);
      const through = before === undefined || !atOrBefore(id, before) ? id : before;
      this.through.set(stream, through);
      const ready = [...this.waiters].filter((w) => w.stream === stream && atOrBefore(w.id, through));
      for (const w of ready) this.waiters.delete(w);
      return Effect.forEach(ready, (w) => Deferred.succeed(w.done, undefined), { discard: true });
    });
  }

  /** Succeeds once `id` of `stream` is settled, or the bridge has stopped. */
  wait(stream: string, id: string): Effect.Effect<void> {
    return Effect.suspend(() => {
      const through = this.through.get(stream);
      if (this.stopped || (through !== undefined && atOrBefore(id, through))) return Effect.void;
      return Effect.flatMap(Deferred.make<void>(), (done) => {
        this.waiters.add({ stream, id, done });
        return Deferred.await(done);
      });
    });
  }

  /** The bridge stopped: every waiter is released, and nobody waits again. */
  readonly release: Effect.Effect<void> = Effect.suspend(() => {
    this.stopped = true;
    const all = [...this.waiters];
    this.waiters.clear();
    return Effect.forEach(all, (w) => Deferred.succeed(w.done, undefined), { discard: true });
  });
}
