/**
 * A layer's mailbox: commands wait here in arrival order and are applied one at a time.
 * Two rules sit on top of plain FIFO:
 * - an emergency stop is applied before anything already queued for its layer;
 * - a command that waited longer than its `timeout_ms` is answered `timeout` and not applied,
 *   because the caller has given up on it and applying it late would surprise them.
 */
import type { CommandResult } from "../protocol/messages.ts";
import type { Applied, LayerHost } from "./layer-host.ts";
import { commandResult, type HostedCommand } from "./messages.ts";

interface Letter {
  readonly command: HostedCommand;
  readonly enqueuedAt: number;
  readonly resolve: (applied: Applied) => void;
}

export class Mailbox {
  private readonly queue: Letter[] = [];
  private head = 0;
  private readonly urgent: Letter[] = [];
  private scheduled = false;

  constructor(
    private readonly host: LayerHost,
    private readonly clock: () => number = Date.now,
  ) {}

  get size(): number {
    return this.queue.length - this.head + this.urgent.length;
  }

  post(command: HostedCommand): Promise<Applied> {
    return new Promise((resolve) => {
      const letter = { command, enqueuedAt: this.clock(), resolve };
      if (command.message_type === "EmergencyStopCommand") this.urgent.push(letter);
      else this.queue.push(letter);
      if (!this.scheduled) {
        this.scheduled = true;
        // Drain on a microtask so everything posted in this turn is queued first: that is what
        // lets an emergency stop overtake commands that arrived before it.
        queueMicrotask(() => this.drain());
      }
    });
  }

  /** Applies everything queued, urgent letters first. */
  drain(): void {
    this.scheduled = false;
    for (;;) {
      const letter = this.urgent.shift() ?? this.queue[this.head++];
      if (!letter) break;
      letter.resolve(this.deliver(letter));
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
    }
    this.queue.length = 0;
    this.head = 0;
  }

  private deliver(letter: Letter): Applied {
    const now = this.clock();
    const timeoutMs = letter.command.timeout_ms;
    if (timeoutMs !== undefined && timeoutMs > 0 && now - letter.enqueuedAt > timeoutMs) {
      return {
        result: timedOut(this.host, letter.command, now - letter.enqueuedAt),
        transitions: [],
      };
    }
    return this.host.apply(letter.command, letter.enqueuedAt);
  }
}

const timedOut = (host: LayerHost, command: HostedCommand, waitedMs: number): CommandResult =>
  commandResult({
    source: `esper.layer.${host.layerId}`,
    layerId: host.layerId,
    command,
    seedId: "seed_id" in command && typeof command.seed_id === "number" ? command.seed_id : null,
    code: "timeout",
    error: `waited ${waitedMs} ms in layer ${host.layerId}'s mailbox, longer than its timeout_ms ${command.timeout_ms}; not applied`,
    details: { waited_ms: waitedMs },
    elapsedMs: waitedMs,
  });
