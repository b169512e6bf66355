/**
 * CoordinationRequest and CoordinationResponse (docs/protocol.md): `lock`, `election` and
 * `barrier` on a resource. There is no coordinator process to fail: each request is decided by
 * Redis itself, atomically (a lease for a lock or an election, a hash of arrivals for a barrier),
 * on behalf of the requester, which writes the request and its response on `P.coordination`,
 * where every program can see who asked for what and who holds it.
 *
 * - `lock`: granted when the requester holds `P.lock.{resource}` (taken if free, renewed if its
 *   own), waiting up to `timeout_ms`. `parameters.ttl_ms` (default 30,000) bounds the holding;
 *   `parameters.release: true` gives it up. `details.token` is the fencing token of the holding.
 * - `election`: the same on `P.election.{resource}`: the holder leads, renewing by asking again.
 * - `barrier`: the requester arrives at `P.barrier.{resource}` and is granted once
 *   `parameters.parties` requesters arrived, waiting up to `timeout_ms`; `details.arrived` counts
 *   them. A barrier is for one use: name each one (`checkpoint-epoch-12`).
 */
import { Clock, Effect } from "effect";
import type { Bus, BusError } from "../bus/bus.ts";
import type { Codec } from "../protocol/codec.ts";
import { encodeEntry, type HmacKey } from "../protocol/entry.ts";
import { coordinationResponse } from "../protocol/make.ts";
import type { CoordinationRequest, CoordinationResponse, Message } from "../protocol/messages.ts";
import { streams } from "../protocol/streams.ts";

/** Where and how `coordinate` works: the namespace of `P.coordination`, its polling, and how it writes entries. */
export interface CoordinateOptions {
  readonly namespace?: string;
  /** How often a waiting request looks again. Default 50 ms. */
  readonly pollMs?: number;
  readonly codec?: Codec;
  readonly hmacKey?: HmacKey;
}

export const COORDINATE_DEFAULTS = { pollMs: 50, lockTtlMs: 30_000, maxLen: 10_000 } as const;

const positiveInt = (value: unknown): number | null => (typeof value === "number" && Number.isInteger(value) && value > 0 ? value : null);

/**
 * `metadata.decided_by` of a request its requester decides itself (`coordinate`): the workers
 * that answer other programs' requests (coordinator.ts) leave it alone.
 */
export const DECIDED_BY_REQUESTER = "requester";

const encoderOf = (options: CoordinateOptions) => {
  const stream = streams(options.namespace).coordination;
  return (message: Message) => encodeEntry(message, { stream, ...(options.codec ? { codec: options.codec } : {}), ...(options.hmacKey ? { hmacKey: options.hmacKey } : {}) });
};

/** Decides `request` (waiting up to its `timeout_ms`), and writes it and its response on `P.coordination`. */
export const coordinate = (bus: Bus, request: CoordinationRequest, options: CoordinateOptions = {}): Effect.Effect<CoordinationResponse, BusError> =>
  Effect.gen(function* () {
    const stream = streams(options.namespace).coordination;
    const encode = encoderOf(options);
    const marked: CoordinationRequest = { ...request, metadata: { ...(request.metadata ?? {}), decided_by: DECIDED_BY_REQUESTER } };
    yield* bus.publish(stream, encode(marked), COORDINATE_DEFAULTS.maxLen);
    const response = yield* decideRequest(bus, marked, options);
    yield* bus.publish(stream, encode(response), COORDINATE_DEFAULTS.maxLen);
    return response;
  });

/** Answers a request written by someone else: decides it and writes the response on `P.coordination`. */
export const answerRequest = (bus: Bus, request: CoordinationRequest, options: CoordinateOptions & { readonly source?: string } = {}): Effect.Effect<CoordinationResponse, BusError> =>
  Effect.gen(function* () {
    const decided = yield* decideRequest(bus, request, options);
    const response: CoordinationResponse = options.source === undefined ? decided : { ...decided, source: options.source };
    yield* bus.publish(streams(options.namespace).coordination, encoderOf(options)(response), COORDINATE_DEFAULTS.maxLen);
    return response;
  });

/** The decision on `request`, by Redis (atomically), waiting up to its `timeout_ms`; writes nothing on `P.coordination`. */
const decideRequest = (bus: Bus, request: CoordinationRequest, options: CoordinateOptions): Effect.Effect<CoordinationResponse, BusError> =>
  Effect.gen(function* () {
    const names = streams(options.namespace);
    const pollMs = options.pollMs ?? COORDINATE_DEFAULTS.pollMs;
    const clock = yield* Clock.Clock;
    const startedAt = clock.currentTimeMillisUnsafe();
    const deadline = startedAt + request.timeout_ms;
    const answer = (granted: boolean, holder: string | null, details: Record<string, unknown>) =>
      coordinationResponse({
        request_id: request.message_id,
        correlation_id: request.message_id,
        granted,
        holder_id: holder,
        wait_time_ms: clock.currentTimeMillisUnsafe() - startedAt,
        details: { operation: request.operation, resource_id: request.resource_id, ...details },
        source: request.source,
      });
    /** Tries `attempt` until it grants or the request's time is up. */
    const untilGranted = (attempt: Effect.Effect<CoordinationResponse, BusError>) =>
      Effect.gen(function* () {
        for (;;) {
          const response = yield* attempt;
          if (response.granted || clock.currentTimeMillisUnsafe() + pollMs > deadline) return response;
          yield* Effect.sleep(pollMs);
        }
      });

    let response: CoordinationResponse;
    if (request.operation === "lock" || request.operation === "election") {
      const key = names.sharedKey(request.operation, request.resource_id);
      const lease = (op: "acquire" | "release") =>
        bus.lease({ op, key, counter: `${key}.fence`, holder: request.requester_id, ttlMs: positiveInt(request.parameters.ttl_ms) ?? COORDINATE_DEFAULTS.lockTtlMs });
      if (request.parameters.release === true) {
        yield* lease("release");
        response = answer(true, null, { released: true });
      } else {
        response = yield* untilGranted(Effect.map(lease("acquire"), (held) => answer(held.held, held.holder, { token: held.token, ttl_ms: held.ttlMs })));
      }
    } else {
      const parties = positiveInt(request.parameters.parties);
      if (parties === null) {
        response = answer(false, null, { error: "a barrier needs parameters.parties, the number of requesters it waits for (a positive integer)" });
      } else {
        const key = names.sharedKey("barrier", request.resource_id);
        yield* bus.commit([{ op: "hset", key, values: { [request.requester_id]: String(startedAt) } }]);
        response = yield* untilGranted(
          Effect.map(bus.hgetall(key), (arrived) => {
            const count = Object.keys(arrived).length;
            return answer(count >= parties, null, { arrived: count, parties });
          }),
        );
      }
    }
    return response;
  });
