/**
 * Tamiyo's side of telemetry: reads layers' telemetry streams in group `tamiyo`, decodes each
 * entry (decode.ts), fetches claim-checked payloads, hands the content to a listener, then acks.
 * An entry that can never be read goes to the dead-letter stream with its reason (docs/protocol.md),
 * and so does a claim-check reference whose payload is gone or unreadable: the reference is all
 * that is left of those seeds, and an operator needs it to see what was lost and why.
 *
 * Dead-letter codes: Bus and docs/protocol.md fix no set for a letter's `code`; esper's other letters
 * use CommandResult codes because a command's letter may also be answered with one. A telemetry
 * entry is never answered, so `claim_expired` (a payload trimmed before it was read) names its
 * case rather than hiding it under `internal`; a payload that is there but cannot be decoded
 * keeps its decoder's code (`invalid_message`, `too_large`, `bad_signature`).
 */
import { hostname } from "node:os";
import { Effect, Result, type Scope } from "effect";
import type { Bus, BusError, Entry } from "../bus/bus.ts";
import type { HmacKey } from "../protocol/entry.ts";
import { DEFAULT_MAX_INFLATED_BYTES, DEFAULT_MAX_MESSAGE_BYTES } from "../protocol/limits.ts";
import { TelemetryScanner } from "../protocol/fast/telemetry-scanner.ts";
import { GROUPS, streams as streamNames } from "../protocol/streams.ts";
import type { Topology } from "../protocol/streams.ts";
import { claimOf } from "./claim-check.ts";
import { decodeTelemetryEntry, type TelemetryContent } from "./decode.ts";
import type { TelemetryFrame } from "./frame.ts";
import { TELEMETRY_DEFAULTS } from "./options.ts";

/** Dead-letter `code` of a claim-check reference whose payload was trimmed from the claim stream before it was read. */
export const CLAIM_EXPIRED = "claim_expired";

export interface TelemetryConsumerOptions {
  /** Layers whose telemetry to read. */
  readonly layers: readonly string[];
  /** Called once per entry with what it holds, in stream order per layer. Its exceptions are its own. */
  readonly onTelemetry: (content: TelemetryContent, entry: Entry) => void;
  readonly namespace?: string;
  /** Stream names: esper's or the reference's. Default: ESPER_TOPOLOGY, else "esper". */
  readonly topology?: Topology;
  /** Default "tamiyo". */
  readonly group?: string;
  /** Default `${hostname}-${pid}`. */
  readonly consumer?: string;
  /** Entries per read. Default 32: an entry holds up to ~1000 records. */
  readonly count?: number;
  /** Default 1000 ms. */
  readonly blockMs?: number;
  readonly hmacKey?: HmacKey;
  /** Largest entry accepted. Default 1 MiB. */
  readonly maxBytes?: number;
  readonly maxInflatedBytes?: number;
  /** Largest claim-checked payload accepted. Default the publisher's maxClaimBytes (64 MiB). */
  readonly maxClaimBytes?: number;
}

export interface TelemetryConsumerStats {
  readonly entries: number;
  /** Seed records in the frames delivered, plus snapshots. */
  readonly records: number;
  readonly frames: number;
  readonly snapshots: number;
  /** Entries that could not be read, dead-lettered (a reference whose payload was lost included). */
  readonly rejected: number;
  readonly claims: number;
  /** References whose payload was gone (trimmed from the claim stream) or unreadable when read; each is dead-lettered. */
  readonly claimsLost: number;
}

export interface TelemetryConsumer {
  readonly stats: () => TelemetryConsumerStats;
}

interface LostClaim {
  readonly code: string;
  readonly error: string;
}

const recordsOf = (c: TelemetryContent): number => {
  let n = c.snapshots.length;
  for (const f of c.frames) n += f.seeds.length;
  return n;
};

/** Starts one read loop per layer in the current Scope. */
export const makeTelemetryConsumer = (bus: Bus, options: TelemetryConsumerOptions): Effect.Effect<TelemetryConsumer, BusError, Scope.Scope> =>
  Effect.gen(function* () {
    const names = streamNames(options.namespace, options.topology);
    const group = options.group ?? GROUPS.tamiyo;
    const consumer = options.consumer ?? `${hostname()}-${process.pid}`;
    const decodeOptions = {
      maxBytes: options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      maxInflatedBytes: options.maxInflatedBytes ?? DEFAULT_MAX_INFLATED_BYTES,
      ...(options.hmacKey !== undefined ? { hmacKey: options.hmacKey } : {}),
    };
    const maxClaimBytes = options.maxClaimBytes ?? TELEMETRY_DEFAULTS.maxClaimBytes;
    const s = { entries: 0, records: 0, frames: 0, snapshots: 0, rejected: 0, claims: 0, claimsLost: 0 };
    // One for every layer's read loop: an entry is scanned in one go, never across a yield, so two never share it at once.
    const scanner = new TelemetryScanner();

    /**
     * A reference's payload, decoded as if it stood in the telemetry stream (its signature covers
     * that stream). A claim that cannot be resolved is returned in `lost` with the letter's code
     * and text; the rest of the entry is still delivered.
     */
    const resolveClaims = (stream: string, content: TelemetryContent): Effect.Effect<{ content: TelemetryContent; lost: LostClaim[] }, BusError> =>
      Effect.gen(function* () {
        if (!content.frames.some((f) => claimOf(f) !== undefined)) return { content, lost: [] };
        const frames: TelemetryFrame[] = [];
        const snapshots = [...content.snapshots];
        const lost: LostClaim[] = [];
        for (const frame of content.frames) {
          const claim = claimOf(frame);
          if (claim === undefined) {
            frames.push(frame);
            continue;
          }
          const [payload] = yield* bus.range(claim.key, claim.id, claim.id, 1);
          if (payload === undefined) {
            s.claimsLost++;
            lost.push({
              code: CLAIM_EXPIRED,
              error:
                `claim-check payload ${claim.id} of ${claim.key} (${claim.records} seed records, ${claim.bytes} bytes) was trimmed before it was read: ` +
                `raise the publisher's claimMaxLen (payloads kept per layer), or read telemetry faster`,
            });
            continue;
          }
          const decoded = decodeTelemetryEntry(stream, payload.fields, { ...decodeOptions, maxBytes: maxClaimBytes }, scanner);
          if (Result.isFailure(decoded)) {
            s.claimsLost++;
            lost.push({
              code: decoded.failure.code,
              error: `claim-check payload ${claim.id} of ${claim.key} cannot be read: ${decoded.failure.message}`,
            });
            continue;
          }
          s.claims++;
          frames.push(...decoded.success.frames);
          snapshots.push(...decoded.success.snapshots);
        }
        return { content: { frames, snapshots }, lost };
      });

    const handle = (stream: string, entries: readonly Entry[]): Effect.Effect<void, BusError> =>
      Effect.gen(function* () {
        const done: string[] = [];
        for (const entry of entries) {
          const decoded = decodeTelemetryEntry(stream, entry.fields, decodeOptions, scanner);
          if (Result.isFailure(decoded)) {
            yield* deadLetter(stream, entry, decoded.failure.code, decoded.failure.message);
            continue;
          }
          const { content, lost } = yield* resolveClaims(stream, decoded.success);
          // A reference that stood alone leaves nothing to hand over; its letter says what was lost.
          if (lost.length === 0 || content.frames.length > 0 || content.snapshots.length > 0) deliver(content, entry);
          // The letter acks the entry, in the same commit.
          if (lost.length > 0) yield* deadLetter(stream, entry, lost[0]!.code, lost.map((l) => l.error).join("; "));
          else done.push(entry.id);
        }
        if (done.length > 0) yield* bus.ack(stream, group, done);
      });

    const deliver = (content: TelemetryContent, entry: Entry): void => {
      s.entries++;
      s.frames += content.frames.length;
      s.snapshots += content.snapshots.length;
      s.records += recordsOf(content);
      try {
        options.onTelemetry(content, entry);
      } catch {
        // the listener's failure is its own: the entry was read
      }
    };

    const deadLetter = (stream: string, entry: Entry, code: string, error: string) => {
      s.rejected++;
      return bus.deadLetter({ dlq: names.dlqFor(stream), entry, group, code, error }).pipe(Effect.asVoid);
    };

    for (const layerId of options.layers) {
      const stream = names.telemetry(layerId);
      const reader = yield* bus.reader({ stream, group, consumer, count: options.count ?? 32, blockMs: options.blockMs ?? 1_000 });
      yield* Effect.forkScoped(
        Effect.forever(
          reader.read.pipe(
            Effect.flatMap((entries) => handle(stream, entries)),
            Effect.catchTag("BusError", (e: BusError) => (e.reason === "closed" ? Effect.interrupt : Effect.sleep(100))),
          ),
        ),
      );
    }
    return { stats: () => ({ ...s }) };
  });
