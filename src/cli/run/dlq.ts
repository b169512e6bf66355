/** The work of `esper dlq`, loaded only when it runs (so `--help` loads none of it). */
import { Effect } from "effect";
import { listDeadLetters, replayDeadLetter } from "../../bus/dead-letters.ts";
import { makeRedisBus } from "../../bus/redis-bus.ts";
import { streams } from "../../protocol/streams.ts";
import { connectionFrom, runUntilSignal } from "../connection.ts";
import { UsageError } from "../flags.ts";
import type { DlqFlags } from "../dlq.ts";

export const runDlq = async (action: "list" | "replay", flags: DlqFlags): Promise<number> => {
  const count = flags.count === undefined ? 100 : Number(flags.count);
  if (!Number.isInteger(count) || count < 1) throw new UsageError(`--count must be a positive integer, got ${flags.count}`);
  const connection = connectionFrom(flags);
  const names = streams(connection.namespace, connection.topology);
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
