/**
 * The WebSocket side of inspection: Stately inspection events to an inspector at `ws://...`.
 *
 * Why not @statelyai/inspect's own WebSocket adapter: it keeps only the last 200 events until
 * its socket opens (a system of 4 x 64 seeds registers 260 actors before that, so a receiver
 * heard of 66 and got events for actor sessions it never saw registered), and after an error
 * it reconnects every 5 s forever, `stop()` or not, so a process inspecting nothing never
 * exited. Here:
 * - every actor's registration (`@xstate.actor`) is kept with its latest snapshot, and replayed
 *   whenever a socket opens, so a receiver that connects late still sees every actor as it is;
 * - other events wait in a bounded queue while no socket is open (the oldest go first, and are
 *   counted);
 * - reconnection timers and the socket never keep the process alive, and `stop()` ends both;
 * - an unreachable inspector is said once on stderr, not once per retry.
 */
import type { StatelyInspectionEvent } from "@statelyai/inspect";
import { configure } from "safe-stable-stringify";
import { WebSocket } from "ws";
import { ActorRegistry } from "./actor-registry.ts";

export interface InspectorSocketOptions {
  /** Events (other than actor registrations) kept while no socket is open. Default 10,000. */
  readonly maxQueued?: number;
  /** Actor registrations kept for replay. Default 100,000. */
  readonly maxActors?: number;
  /** Wait before trying an unreachable inspector again. Default 2,000 ms. */
  readonly retryMs?: number;
  /** Depth past which nested values are cut when serialised (a snapshot's context). Default 10. */
  readonly depthLimit?: number;
  /** Where the one line about an unreachable inspector goes. Default stderr. */
  readonly warn?: (line: string) => void;
}

export const INSPECTOR_SOCKET_DEFAULTS = { maxQueued: 10_000, maxActors: 100_000, retryMs: 2_000, depthLimit: 10 } as const;

export class InspectorSocket {
  private socket: WebSocket | null = null;
  private open = false;
  private stopped = false;
  private warned = false;
  private everOpen = false;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private readonly actors: ActorRegistry<StatelyInspectionEvent>;
  private queue: StatelyInspectionEvent[] = [];
  private readonly options: Required<Omit<InspectorSocketOptions, "warn">> & Pick<InspectorSocketOptions, "warn">;
  private readonly stringify: (value: unknown) => string | undefined;
  /** Events dropped from the queue while no socket was open. */
  dropped = 0;

  constructor(readonly url: string, options: InspectorSocketOptions = {}) {
    this.options = { ...INSPECTOR_SOCKET_DEFAULTS, ...options };
    this.stringify = configure({ maximumDepth: this.options.depthLimit });
    this.actors = new ActorRegistry(this.options.maxActors);
  }

  /** How many actors a receiver would be told of on connecting. */
  get actorsKnown(): number {
    return this.actors.size;
  }

  start(): void {
    if (this.stopped || this.socket) return;
    this.connect();
  }

  send(event: StatelyInspectionEvent): void {
    if (this.stopped) return;
    const registration = this.actors.note(event);
    if (this.open) {
      this.write(event);
      return;
    }
    // Registrations are replayed from `actors` on open; only the rest waits here.
    if (registration) return;
    this.queue.push(event);
    if (this.queue.length > this.options.maxQueued) {
      this.queue.shift();
      this.dropped++;
    }
  }

  /**
   * Stops retrying, sends what it can, and closes: resolves within a second whatever the socket
   * does. A socket still connecting is given that second to open, so a system that closes before
   * its inspector answered still delivers everything it registered (its registrations are
   * replayed, and its queue flushed, on open).
   */
  stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    const socket = this.socket;
    if (!socket) {
      this.noneAnswered();
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(deadline);
        this.socket = null;
        this.queue = [];
        this.noneAnswered();
        resolve();
      };
      const deadline = setTimeout(() => {
        socket.terminate();
        finish();
      }, 1_000);
      deadline.unref();
      socket.once("close", finish);
      // Opening flushes (see connect); then it closes, after what it sent.
      if (socket.readyState === WebSocket.CONNECTING) socket.once("open", () => socket.close());
      else socket.close();
    });
  }

  /** A process whose work ended before any inspector answered still hears, once, that nothing was delivered. */
  private noneAnswered(): void {
    if (!this.everOpen) this.warnOnce(`stopped before any inspector answered; ${this.actors.size} actor registration(s) were not delivered`);
  }

  private warnOnce(why: string): void {
    if (this.warned) return;
    this.warned = true;
    const warn = this.options.warn ?? ((line: string) => void process.stderr.write(`${line}\n`));
    warn(`esper: no Stately inspector at ${this.url} (${why})`);
  }

  private write(event: StatelyInspectionEvent): void {
    const text = this.stringify(event);
    if (text !== undefined) this.socket?.send(text);
  }

  private connect(): void {
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.on("open", () => {
      // A live socket must not hold the process: the system's own work decides when it ends.
      (socket as unknown as { _socket?: { unref?: () => void } })._socket?.unref?.();
      this.open = true;
      this.everOpen = true;
      this.warned = false;
      for (const registration of this.actors.registrations()) this.write(registration);
      const waiting = this.queue;
      this.queue = [];
      for (const event of waiting) this.write(event);
    });
    socket.on("error", (error: Error) => {
      if (!this.stopped) this.warnOnce(`${error.message || "connection failed"}; inspection events wait until one listens`);
    });
    socket.on("close", () => {
      this.open = false;
      if (this.socket === socket) this.socket = null;
      if (this.stopped) return;
      this.retry = setTimeout(() => {
        this.retry = null;
        if (!this.stopped) this.connect();
      }, this.options.retryMs);
      this.retry.unref();
    });
  }
}
