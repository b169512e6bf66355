/**
 * Answering other programs' coordination requests: a `CoordinationRequest` written on
 * `P.coordination` by any program (a Python trainer with redis-py, say) is answered by one of
 * esper's workers, each a member of the group `coordinator` on that stream, with a
 * `CoordinationResponse` decided by Redis exactly as `coordinate` decides its own (coordinate.ts).
 * Requests that `coordinate` wrote for itself (`metadata.decided_by: "requester"`) are its
 * requester's to answer, and announcements, heartbeats and responses are only read past. An entry
 * that does not decode is dead-lettered on `P.dlq.all`.
 *
 * A request is acknowledged once its response is written, so one whose worker died meanwhile is
 * answered when that worker comes back under the same name (a lock or barrier request decided
 * twice changes nothing: it renews the same holding, or arrives again as the same requester).
 */
import { Effect, type Scope } from "effect";
import type { Bus, BusError, Entry } from "../bus/bus.ts";
import type { Codec } from "../protocol/codec.ts";
import { decodeEntry, type HmacKey } from "../protocol/entry.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../protocol/limits.ts";
import { streams } from "../protocol/streams.ts";
import { answerRequest, DECIDED_BY_REQUESTER } from "./coordinate.ts";

/** The consumer group on `P.coordination` whose members answer requests. */
export const COORDINATOR_GROUP = "coordinator";

export interface CoordinatorOptions {
  readonly namespace?: string;
  /** This member's name in the group (a worker's consumer name). */
  readonly consumer: string;
  /** `source` of its responses. */
  readonly source?: string;
  readonly codec?: Codec;
  /** Responses are signed with it, and requests must carry a valid `sig`. */
  readonly hmacKey?: HmacKey;
  /** How long a read waits for news. Default 1,000 ms. */
  readonly blockMs?: number;
}

/** Answers the coordination requests of `P.coordination` in the current Scope, until it closes. */
export const serveCoordination = (bus: Bus, options: CoordinatorOptions): Effect.Effect<void, BusError, Scope.Scope> =>
  Effect.gen(function* () {
    const names = streams(options.namespace);
    const stream = names.coordination;
    const scope = yield* Effect.scope;
    // Requests written while no worker ran are stale by the time one starts: the group begins at the end.
    yield* bus.ensureGroup(stream, COORDINATOR_GROUP, "$");
    const reader = yield* bus.reader({ stream, group: COORDINATOR_GROUP, consumer: options.consumer, blockMs: options.blockMs ?? 1_000, maxEntryBytes: DEFAULT_MAX_MESSAGE_BYTES });
    const respond = { ...(options.namespace ? { namespace: options.namespace } : {}), ...(options.codec ? { codec: options.codec } : {}), ...(options.hmacKey ? { hmacKey: options.hmacKey } : {}), ...(options.source ? { source: options.source } : {}) };

    const handle = (entry: Entry): Effect.Effect<void, BusError> => {
      const decoded = decodeEntry(stream, entry.fields, options.hmacKey !== undefined ? { hmacKey: options.hmacKey } : {});
      if (decoded._tag !== "Success") {
        return Effect.asVoid(bus.deadLetter({ dlq: names.dlqAll, entry, group: COORDINATOR_GROUP, code: decoded.failure.code, error: decoded.failure.message }));
      }
      const message = decoded.success;
      // In a deployment with a key, whoever asks for a lock signs the request (a forged `sig` fails decoding above).
      if (options.hmacKey !== undefined && message.message_type === "CoordinationRequest" && entry.fields["sig"] === undefined) {
        return Effect.asVoid(bus.deadLetter({ dlq: names.dlqAll, entry, group: COORDINATOR_GROUP, code: "bad_signature", error: "an unsigned CoordinationRequest where the deployment has a key: sign it (docs/protocol.md)" }));
      }
      const ack = Effect.asVoid(bus.ack(stream, COORDINATOR_GROUP, [entry.id]));
      if (message.message_type !== "CoordinationRequest" || message.metadata?.["decided_by"] === DECIDED_BY_REQUESTER) return ack;
      // Each request in a fiber of its own: a barrier's wait holds up nobody else's lock.
      return Effect.asVoid(Effect.forkIn(Effect.andThen(answerRequest(bus, message, respond), ack).pipe(Effect.ignore), scope));
    };

    const serve = Effect.forever(
      reader.read.pipe(
        Effect.flatMap((entries) => Effect.forEach(entries, handle, { discard: true })),
        // Redis away: wait, then read again (what was pending comes back first).
        Effect.catch((error: BusError) => (error.reason === "closed" ? Effect.interrupt : Effect.sleep(500))),
      ),
    );
    yield* Effect.forkScoped(serve);
  });
