/**
 * The chaos run's client: walks every seed of the plan, one command at a time per seed (a seed's
 * next command goes out only once the last one is answered), many seeds at once. A command whose
 * result is late is sent again, backing off, with the same bytes, hence the same `message_id`,
 * as a real client does after a timeout or a failed publish; the bridge's dedupe must make that
 * harmless.
 */
import type { CommandResult } from "../../src/protocol/messages.ts";
import type { CommandPlan, PlannedCommand } from "./command-plan.ts";
import type { Ledger } from "./ledger.ts";

export interface DriverOptions {
  /** Seeds walked at once. */
  readonly concurrency: number;
  /** First wait for a result before re-sending; it doubles per re-send of the same command, up to 4 times this. */
  readonly resendAfterMs: number;
  /** Appends the command's entry to its control stream; may wait (Redis away) or fail. */
  readonly publish: (command: PlannedCommand) => Promise<unknown>;
  /** Where results arrive (a follower of the event streams records into it). */
  readonly ledger: Ledger;
  /** The driver gives up (and says on which command) after this time, ms since the epoch. */
  readonly deadline: number;
}

export interface DriverStats {
  /** Commands answered so far (first result seen). */
  answered: number;
  sends: number;
  resends: number;
  publishFailures: number;
  /** Commands whose first result was not `ok`: their seed stopped there. */
  readonly refused: string[];
}

const within = <A>(promise: Promise<A>, ms: number): Promise<A | undefined> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });

export class Driver {
  readonly stats: DriverStats = { answered: 0, sends: 0, resends: 0, publishFailures: 0, refused: [] };
  private stopped = false;

  constructor(
    private readonly plan: CommandPlan,
    private readonly options: DriverOptions,
  ) {}

  /** Stops sending: every command still waiting fails at its next re-send (the test is over). */
  stop(): void {
    this.stopped = true;
  }

  /** Resolves once every seed has walked its path (or stopped at a refused command). */
  async run(): Promise<DriverStats> {
    const queue = [...this.plan.seeds];
    const lane = async () => {
      for (let seed = queue.shift(); seed !== undefined; seed = queue.shift()) {
        for (const command of seed.commands) {
          const result = await this.deliver(command);
          this.stats.answered++;
          if (result.code !== "ok") {
            this.stats.refused.push(`${command.layerId}/${command.seedId} ${command.from}->${command.to}: ${result.code} ${result.error ?? ""}`);
            break;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: this.options.concurrency }, lane));
    return this.stats;
  }

  private async deliver(command: PlannedCommand): Promise<CommandResult> {
    const { ledger, publish, resendAfterMs, deadline } = this.options;
    const answer = ledger.answered(command.messageId);
    let publishing = false;
    for (let attempt = 0; ; attempt++) {
      // A publish still waiting in the bus's outbox is not doubled: the outbox writes it when Redis is back.
      if (!publishing) {
        publishing = true;
        this.stats.sends++;
        if (attempt > 0) this.stats.resends++;
        publish(command)
          .catch(() => {
            this.stats.publishFailures++;
          })
          .finally(() => {
            publishing = false;
          });
      }
      const result = await within(answer, resendAfterMs * 2 ** Math.min(attempt, 2));
      if (result !== undefined) return result;
      if (this.stopped) throw new Error(`stopped while ${command.messageId} was unanswered`);
      if (Date.now() > deadline) {
        throw new Error(`no result for ${command.layerId}/${command.seedId} ${command.from}->${command.to} (${command.messageId}) after ${attempt + 1} sends`);
      }
    }
  }
}
