/**
 * What the layers' event streams say happened to each command, and the audit of it against the
 * plan: every command exactly one transition (the planned edge) and exactly one result that is
 * not flagged `details.duplicate`, that one `ok`; any further result flagged as a duplicate.
 */
import type { CommandResult, Message, StateTransitionEvent } from "../../src/protocol/messages.ts";
import type { CommandPlan } from "./command-plan.ts";

export class Ledger {
  readonly results = new Map<string, CommandResult[]>();
  readonly transitions = new Map<string, StateTransitionEvent[]>();
  /** Events on the streams that answer no command of the plan. */
  readonly strays: Message[] = [];
  private readonly waiters = new Map<string, Array<(result: CommandResult) => void>>();

  constructor(private readonly plan: CommandPlan) {}

  record(message: Message): void {
    const id = message.correlation_id ?? undefined;
    if (id === undefined || !this.plan.byId.has(id)) {
      this.strays.push(message);
      return;
    }
    if (message.message_type === "StateTransitionEvent") push(this.transitions, id, message);
    else if (message.message_type === "CommandResult") {
      push(this.results, id, message);
      const waiting = this.waiters.get(id);
      this.waiters.delete(id);
      for (const resolve of waiting ?? []) resolve(message);
    } else this.strays.push(message);
  }

  firstResult(messageId: string): CommandResult | undefined {
    return this.results.get(messageId)?.[0];
  }

  /** Resolves with the first result for the command (at once if it is already here). */
  answered(messageId: string): Promise<CommandResult> {
    const first = this.firstResult(messageId);
    if (first !== undefined) return Promise.resolve(first);
    return new Promise((resolve) => push(this.waiters, messageId, resolve));
  }
}

const push = <V>(map: Map<string, V[]>, key: string, value: V): void => {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
};

const isDuplicate = (r: CommandResult): boolean => (r.details as { duplicate?: unknown }).duplicate === true;

export interface Audit {
  readonly commands: number;
  readonly transitions: number;
  /** Commands without their transition, or without an `ok` result. */
  readonly lost: readonly string[];
  /** Commands with more than one transition, or more than one result not flagged duplicate. */
  readonly doubled: readonly string[];
  /** Commands whose transition is not the planned edge, or whose first fresh result is not `ok`. */
  readonly wrong: readonly string[];
  readonly duplicateResults: number;
  readonly strays: number;
  /** One line per problem command, for the failure message (at most 20). */
  readonly examples: readonly string[];
}

export const audit = (plan: CommandPlan, ledger: Ledger): Audit => {
  const lost: string[] = [];
  const doubled: string[] = [];
  const wrong: string[] = [];
  const examples: string[] = [];
  let transitions = 0;
  let duplicateResults = 0;
  for (const command of plan.commands) {
    const moved = ledger.transitions.get(command.messageId) ?? [];
    const results = ledger.results.get(command.messageId) ?? [];
    const fresh = results.filter((r) => !isDuplicate(r));
    transitions += moved.length;
    duplicateResults += results.length - fresh.length;
    const problems: string[] = [];
    if (moved.length === 0 || !fresh.some((r) => r.code === "ok")) {
      lost.push(command.messageId);
      problems.push("lost");
    }
    if (moved.length > 1 || fresh.length > 1) {
      doubled.push(command.messageId);
      problems.push("doubled");
    }
    const badEdge = moved.some((t) => t.layer_id !== command.layerId || t.seed_id !== command.seedId || t.from_state !== command.from || t.to_state !== command.to);
    if (badEdge || (fresh[0] !== undefined && fresh[0].code !== "ok") || (results[0] !== undefined && isDuplicate(results[0]))) {
      wrong.push(command.messageId);
      problems.push("wrong");
    }
    if (problems.length > 0 && examples.length < 20) {
      examples.push(
        `${command.layerId}/${command.seedId} ${command.from}->${command.to} ${command.messageId}: ${problems.join(",")}; ` +
          `transitions [${moved.map((t) => `${t.from_state}->${t.to_state}`).join(" ")}], ` +
          `results [${results.map((r) => `${r.code}${isDuplicate(r) ? "(dup)" : ""}`).join(" ")}]`,
      );
    }
  }
  return { commands: plan.commands.length, transitions, lost, doubled, wrong, duplicateResults, strays: ledger.strays.length, examples };
};
