/**
 * Every actor an inspector should know of, with its latest snapshot: what a receiver that
 * connects late is told first, so it never hears of an actor session it was not told exists.
 * Shared by the sending side (InspectorSocket) and the relay (`esper inspect`).
 */

/** The fields of a Stately inspection event the registry reads. */
export interface InspectionLike {
  readonly type: string;
  readonly sessionId?: string;
  readonly snapshot?: unknown;
}

export class ActorRegistry<E extends InspectionLike> {
  private readonly actors = new Map<string, E>();

  /** `max`: registrations kept; past it, the oldest goes. */
  constructor(private readonly max: number) {}

  /** Notes an event: a registration is kept, a snapshot updates its actor's. True for a registration. */
  note(event: E): boolean {
    const id = event.sessionId;
    if (id === undefined) return false;
    if (event.type === "@xstate.actor") {
      if (!this.actors.has(id) && this.actors.size >= this.max) this.actors.delete(this.actors.keys().next().value!); // insertion order: the oldest
      this.actors.set(id, event);
      return true;
    }
    if (event.type === "@xstate.snapshot") {
      const known = this.actors.get(id);
      if (known) this.actors.set(id, { ...known, snapshot: event.snapshot });
    }
    return false;
  }

  get size(): number {
    return this.actors.size;
  }

  /** The registrations, oldest first, each with its actor's latest snapshot. */
  registrations(): IterableIterator<E> {
    return this.actors.values();
  }
}
