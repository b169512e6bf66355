import { Effect, Fiber, Result } from "effect";
import type { Bus, BusError, Entry } from "../bus/bus.ts";
import { decodeEntry, type HmacKey } from "../protocol/entry.ts";
import type { Message } from "../protocol/messages.ts";
import type { ProtocolError } from "../protocol/protocol-error.ts";
import type { Runner } from "./runner.ts";

export type StreamListener = (message: Message, entryId: string) => void;
/** An entry on a followed stream that could not be read: said, never skipped in silence. */
export type UndecodableListener = (error: ProtocolError, entry: Entry) => void;

interface Follower {
  readonly listeners: Set<StreamListener>;
  readonly undecodable: Set<UndecodableListener>;
  readonly ready: Promise<void>;
  /** Set once `ready` resolved: a send can then go on without waiting a turn. */
  positioned: boolean;
}

export interface FollowersOptions {
  readonly blockMs: number;
  readonly hmacKey: HmacKey | undefined;
  /** Every message read on a stream whose `answers` is set (the client matches results to sends). */
  readonly onAnswer: (message: Message) => void;
}

/**
 * One reader per followed stream (plain XREAD from the stream's last id when first followed),
 * shared by every listener of it, so a thousand pending sends cost one reader, not a thousand.
 * An entry that cannot be read is reported to the stream's undecodable listeners (the CLI prints
 * it, a system publishes it) and counted.
 */
export class Followers {
  private readonly followers = new Map<string, Follower>();
  private readonly fibers: Fiber.Fiber<unknown, unknown>[] = [];
  private undecodableCount = 0;
  /** Set by `stop`: a follow positioned after it starts no reader (its fiber would outlive the client). */
  private stopped = false;

  constructor(
    private readonly bus: Bus,
    private readonly run: Runner,
    private readonly options: FollowersOptions,
  ) {}

  /** Entries that could not be read, on every followed stream. */
  get undecodable(): number {
    return this.undecodableCount;
  }

  /** The follower of `stream`, started at its current end; `ready` resolves once it is positioned. */
  follow(stream: string, answers: boolean): Follower {
    const existing = this.followers.get(stream);
    if (existing) return existing;
    const isStopped = () => this.stopped;
    const follower: Follower = { listeners: new Set(), undecodable: new Set(), ready: Promise.resolve(), positioned: false };
    const fibers = this.fibers;
    const deliver = (entry: Entry) => this.deliver(stream, entry, follower, answers);
    const { bus, run, options } = this;
    const ready = run.promise(
      Effect.gen(function* () {
        let last = yield* bus.lastId(stream);
        if (isStopped()) return;
        const loop = Effect.gen(function* () {
          for (;;) {
            const entries = yield* bus.readAfter(stream, last, 512, options.blockMs).pipe(
              Effect.catchTag("BusError", (e: BusError) => (e.reason === "closed" ? Effect.interrupt : Effect.as(Effect.sleep(100), []))),
            );
            for (const entry of entries) {
              last = entry.id;
              deliver(entry);
            }
          }
        });
        fibers.push(run.fork(loop));
      }),
    ).then(
      () => {
        follower.positioned = true;
      },
      (error: unknown) => {
        // Not positioned (the bus refused lastId): forgotten, so the next use tries again.
        this.followers.delete(stream);
        throw error;
      },
    );
    (follower as { ready: Promise<void> }).ready = ready;
    this.followers.set(stream, follower);
    return follower;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const fiber of this.fibers) await this.run.promise(Fiber.interrupt(fiber));
    this.fibers.length = 0;
  }

  private deliver(stream: string, entry: Entry, follower: Follower, answers: boolean): void {
    const listening = follower.listeners.size > 0 || follower.undecodable.size > 0;
    // Nobody listens, only sends wait: what is not a CommandResult need not be read.
    if (!listening && entry.fields.type !== "CommandResult") return;
    const decoded = decodeEntry(stream, entry.fields, this.options.hmacKey !== undefined ? { hmacKey: this.options.hmacKey, requireSig: false } : {});
    if (Result.isFailure(decoded)) {
      this.undecodableCount++;
      for (const listener of follower.undecodable) safely(() => listener(decoded.failure, entry));
      return;
    }
    if (answers) this.options.onAnswer(decoded.success);
    for (const listener of follower.listeners) safely(() => listener(decoded.success, entry.id));
  }
}

/** A listener's failure is its own: it must not stop the follower or the other listeners. */
const safely = (f: () => void): void => {
  try {
    f();
  } catch {
    // its own
  }
};
