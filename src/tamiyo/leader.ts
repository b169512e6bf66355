/**
 * Tamiyo as a process of her own (`esper tamiyo`): any number may run, one leads. The leader
 * holds the Tamiyo lease (`P.lease.tamiyo`) and steers; the others wait as standbys and take
 * over within `leaseMs + pollMs` when she dies (at once when she stops cleanly). Every command
 * the leader sends carries her fencing token (`metadata.leader_token`), and a layer that has seen
 * a newer leader's token refuses an older one's commands as `deposed_leader`: a leader that was
 * paused past her lease cannot steer after her successor has spoken.
 *
 * A new leader starts from what the layers stored (each seed's state and blueprint), then follows
 * their event and telemetry streams as any Tamiyo does.
 */
import { Effect, type Scope } from "effect";
import type { Bus } from "../bus/bus.ts";
import { makeClient, type ClientOptions } from "../client/client.ts";
import { whileHolding, type HoldingOptions } from "../coordination/holding.ts";
import { layerKeys, storedSeeds } from "../bridge/store.ts";
import type { Command, Message } from "../protocol/messages.ts";
import { streams } from "../protocol/streams.ts";
import { makeTamiyo, type LinkEvent, type TamiyoLink, type TamiyoOptions } from "./tamiyo.ts";

export interface LeadingTamiyoOptions extends Omit<TamiyoOptions, "bus" | "link"> {
  /** This Tamiyo's name among her peers (its service id). */
  readonly name: string;
  /** Lease timing (see HoldingOptions). Defaults: 3,000 ms lease, 1,000 ms poll. */
  readonly leaseMs?: number;
  readonly pollMs?: number;
  /** Client options for the commands she sends (codec, HMAC key). */
  readonly client?: Omit<ClientOptions, "namespace">;
  /** Told when she starts leading (with her token) or stands by (with who leads). */
  readonly onRole?: (change: { readonly role: "leader"; readonly token: number } | { readonly role: "standby"; readonly holder: string | null }) => void;
}

export interface LeadingTamiyo {
  readonly role: () => "starting" | "leader" | "standby";
}

/** The keys of the Tamiyo lease in a namespace: one leader for the whole system. */
export const tamiyoLeaseKeys = (namespace?: string) => {
  return streams(namespace).leaderLease;
};

/** The command as sent by the leader holding `token`. */
export const withLeaderToken = (command: Command, token: number): Command => ({ ...command, metadata: { ...(command.metadata ?? {}), leader_token: token } }) as Command;

/** Runs a Tamiyo that steers whenever she holds the Tamiyo lease, in the current Scope. */
export const runLeadingTamiyo = (bus: Bus, options: LeadingTamiyoOptions): Effect.Effect<LeadingTamiyo, never, Scope.Scope> =>
  Effect.gen(function* () {
    const names = streams(options.namespace, options.topology);

    const lead = (token: number) =>
      Effect.gen(function* () {
        const client = yield* makeClient(bus, { ...options.client, ...(options.namespace ? { namespace: options.namespace } : {}), ...(options.topology ? { topology: options.topology } : {}) });
        const link: TamiyoLink = {
          send: (command) => client.send(withLeaderToken(command, token)),
          subscribe: (listener) => {
            const stops: Array<Promise<() => void>> = options.layers.map((layer) =>
              client.events(layer.layerId, (message: Message) =>
                listener(
                  (message.message_type === "StateTransitionEvent"
                    ? { type: "transition", event: message }
                    : message.message_type === "CommandResult"
                      ? { type: "result", result: message }
                      : { type: message.message_type }) as LinkEvent,
                ),
              ),
            );
            return () => void Promise.all(stops).then((all) => all.forEach((stop) => stop()));
          },
        };
        const { name: _name, leaseMs: _l, pollMs: _p, client: _c, onRole: _r, ...tamiyoOptions } = options;
        const tamiyo = yield* makeTamiyo({ ...tamiyoOptions, bus, link, source: options.source ?? `tamiyo.${options.name}` });
        // Where the layers stand now: what they stored, seed by seed.
        for (const layer of options.layers) {
          for (const [seedId, seed] of yield* storedSeeds(bus, layerKeys(names, layer.layerId))) {
            tamiyo.population.transition(layer.layerId, seedId, seed.state);
            if (seed.context.blueprintId !== null) tamiyo.population.blueprint(layer.layerId, seedId, seed.context.blueprintId);
          }
        }
        options.onRole?.({ role: "leader", token });
        return yield* Effect.never;
      }).pipe(
        // Redis away (or her config refused) as she starts: wait a poll before the loop asks again.
        Effect.catch((error: { readonly message: string }) => Effect.as(Effect.sleep(options.pollMs ?? 1_000), `she could not start leading (${error.message})`)),
      );

    const holdingOptions: HoldingOptions = {
      ...tamiyoLeaseKeys(options.namespace),
      name: options.name,
      ...(options.leaseMs !== undefined ? { leaseMs: options.leaseMs } : {}),
      ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
      onStandby: (holder) => options.onRole?.({ role: "standby", holder }),
    };
    const holding = yield* whileHolding(bus, holdingOptions, lead, () => Effect.void);
    return {
      role: () => ({ starting: "starting", holder: "leader", standby: "standby" } as const)[holding.role()],
    };
  });
