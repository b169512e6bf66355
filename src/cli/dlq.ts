import { parseArgs } from "node:util";
import { Effect } from "effect";
import { listDeadLetters, replayDeadLetter } from "../bus/dead-letters.ts";
import { makeRedisBus } from "../bus/redis-bus.ts";
import { streams } from "../protocol/streams.ts";
import { CONNECTION_OPTIONS, UsageError, connectionFrom, runUntilSignal } from "./connection.ts";

const DLQ_USAGE = "esper dlq list|replay --redis URL [--layer ID] [--id ENTRY] [--count N]";

/** `esper dlq list` prints dead letters (a layer's, or P.dlq.all); `esper dlq replay --id X` puts one back on its stream. */
export const runDlq = async (args: string[]): Promise<number> => {
  const [action, ...rest] = args;
  const { values } = parseArgs({ args: rest, options: { ...CONNECTION_OPTIONS, layer: { type: "string" }, id: { type: "string" }, count: { type: "string" } } });
  if (action !== "list" && action !== "replay") throw new UsageError(`usage: ${DLQ_USAGE}`);
  // Checked before anything runs: a usage error thrown inside the program would exit 1, not 2.
  if (action === "replay" && !values.id) throw new UsageError(`replay needs --id (a dlq_id from 'esper dlq list')\nusage: ${DLQ_USAGE}`);
  const count = values.count === undefined ? 100 : Number(values.count);
  if (!Number.isInteger(count) || count < 1) throw new UsageError(`--count must be a positive integer, got ${values.count}`);
  const connection = connectionFrom(values);
  const names = streams(connection.namespace);
  const dlq = values.layer ? names.dlq(values.layer) : names.dlqAll;
  return runUntilSignal(
    Effect.gen(function* () {
      const bus = yield* makeRedisBus({ url: connection.url });
      if (action === "list") {
        const letters = yield* listDeadLetters(bus, dlq, { count });
        for (const l of letters) {
          console.log(JSON.stringify({ dlq_id: l.dlqId, stream: l.stream, id: l.id, type: typeof l.fields.type === "string" ? l.fields.type : null, code: l.code, error: l.error, deliveries: l.deliveries, failed_at: l.failedAt }));
        }
        console.error(`${letters.length} dead letter(s) in ${dlq}${letters.length > 0 ? `; replay one with: esper dlq replay${values.layer ? ` --layer ${values.layer}` : ""} --id <dlq_id>` : ""}`);
        return 0;
      }
      const id = yield* replayDeadLetter(bus, dlq, values.id!);
      console.log(JSON.stringify({ replayed: values.id, new_id: id }));
      return 0;
    }),
  );
};
