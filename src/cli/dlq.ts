import { Command } from "commander";
import { Effect } from "effect";
import { listDeadLetters, replayDeadLetter } from "../bus/dead-letters.ts";
import { makeRedisBus } from "../bus/redis-bus.ts";
import { streams } from "../protocol/streams.ts";
import { UsageError, connectionFrom, runUntilSignal, withConnection, type ConnectionFlags } from "./connection.ts";

interface DlqFlags extends ConnectionFlags {
  readonly layer?: string;
  readonly id?: string;
  readonly count?: string;
}

/** `esper dlq list` prints dead letters (a layer's, or P.dlq.all); `esper dlq replay --id X` puts one back on its stream. */
export const dlqCommand = (done: (code: number) => void): Command => {
  const dlq = new Command("dlq").description("list dead letters, or replay one onto its original stream");
  dlq.addCommand(
    withConnection(
      new Command("list")
        .description("print dead letters as JSON lines (a layer's, or those of P.control.all and P.coordination)")
        .option("--layer <id>", "the layer whose dead letters to list (default: P.dlq.all)")
        .option("--count <n>", "at most this many", "100"),
    )
      .addHelpText("after", "\nExample:\n  esper dlq list --layer dense1")
      .action(async (flags: DlqFlags) => done(await runDlq("list", flags))),
  );
  dlq.addCommand(
    withConnection(
      new Command("replay")
        .description("append a dead letter's original fields to its original stream")
        .requiredOption("--id <dlq_id>", "the letter, a dlq_id from 'esper dlq list'")
        .option("--layer <id>", "the layer whose dead-letter stream holds it (default: P.dlq.all)"),
    )
      .addHelpText("after", "\nExample:\n  esper dlq replay --layer dense1 --id 1733250000000-0")
      .action(async (flags: DlqFlags) => done(await runDlq("replay", flags))),
  );
  return dlq;
};

const runDlq = async (action: "list" | "replay", flags: DlqFlags): Promise<number> => {
  const count = flags.count === undefined ? 100 : Number(flags.count);
  if (!Number.isInteger(count) || count < 1) throw new UsageError(`--count must be a positive integer, got ${flags.count}`);
  const connection = connectionFrom(flags);
  const names = streams(connection.namespace);
  const dlq = flags.layer ? names.dlq(flags.layer) : names.dlqAll;
  return runUntilSignal(
    Effect.gen(function* () {
      const bus = yield* makeRedisBus({ url: connection.url });
      if (action === "list") {
        const letters = yield* listDeadLetters(bus, dlq, { count });
        for (const l of letters) {
          console.log(JSON.stringify({ dlq_id: l.dlqId, stream: l.stream, id: l.id, type: typeof l.fields.type === "string" ? l.fields.type : null, code: l.code, error: l.error, deliveries: l.deliveries, failed_at: l.failedAt }));
        }
        console.error(`${letters.length} dead letter(s) in ${dlq}${letters.length > 0 ? `; replay one with: esper dlq replay${flags.layer ? ` --layer ${flags.layer}` : ""} --id <dlq_id>` : ""}`);
        return 0;
      }
      const id = yield* replayDeadLetter(bus, dlq, flags.id!);
      console.log(JSON.stringify({ replayed: flags.id, new_id: id }));
      return 0;
    }),
    connection.url,
  );
};
