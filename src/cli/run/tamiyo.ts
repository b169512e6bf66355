/** The work of `esper tamiyo`, loaded only when it runs (so `--help` loads none of it). */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { Effect } from "effect";
import { announcePresence } from "../../coordination/presence.ts";
import { isLayerId } from "../../protocol/streams.ts";
import { resolveTamiyoConfig, STRATEGIES, TamiyoConfigError, type Strategy } from "../../tamiyo/config.ts";
import { runLeadingTamiyo } from "../../tamiyo/leader.ts";
import type { LayerProfile } from "../../tamiyo/population.ts";
import { connectWaiting, connectionFrom, runUntilSignal } from "../connection.ts";
import { UsageError } from "../flags.ts";
import type { TamiyoFlags } from "../tamiyo.ts";

const positive = (flag: string, text: string): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} ${text}: a positive integer`);
  return n;
};

/** The layers' profiles, from --profile or from --layer/--seeds/--host-params/--blueprint. */
const profilesOf = (flags: TamiyoFlags): LayerProfile[] => {
  if (flags.profile !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(flags.profile, "utf8"));
    } catch (error) {
      throw new UsageError(`--profile ${flags.profile}: cannot read it as JSON (${error instanceof Error ? error.message : String(error)})`);
    }
    const ok = Array.isArray(parsed) && parsed.length > 0 && parsed.every((p) => p && typeof p === "object" && isLayerId(p.layerId) && Number.isInteger(p.numSeeds) && p.numSeeds > 0 && typeof p.hostParams === "number" && Array.isArray(p.blueprints));
    if (!ok) throw new UsageError(`--profile ${flags.profile}: expected [{ "layerId": "dense1", "numSeeds": 16, "hostParams": 10000, "blueprints": [{ "id": "residual_mlp", "params": 512 }] }, ...]`);
    return parsed as LayerProfile[];
  }
  if (flags.layer === undefined || flags.seeds === undefined) throw new UsageError("name the layers to steer: --layer L1,L2 --seeds N, or --profile FILE");
  const layers = flags.layer.split(",").filter((l) => l !== "");
  const bad = layers.find((l) => !isLayerId(l));
  if (bad !== undefined || layers.length === 0) throw new UsageError(`--layer ${bad ?? flags.layer}: a layer id is 1 to 64 of [A-Za-z0-9_-]`);
  const blueprints = flags.blueprint.split(",").map((pair) => {
    const [id, params] = pair.split("=");
    const cost = Number(params);
    if (!id || !Number.isFinite(cost) || cost <= 0) throw new UsageError(`--blueprint ${pair}: give kind=params, e.g. residual_mlp=512`);
    return { id, params: cost };
  });
  const numSeeds = positive("--seeds", flags.seeds);
  const hostParams = positive("--host-params", flags.hostParams);
  return layers.map((layerId) => ({ layerId, numSeeds, hostParams, blueprints }));
};

export const runTamiyo = async (flags: TamiyoFlags): Promise<number> => {
  const layers = profilesOf(flags);
  if (flags.strategy !== undefined && !(STRATEGIES as readonly string[]).includes(flags.strategy)) throw new UsageError(`--strategy ${flags.strategy}: one of ${STRATEGIES.join(", ")}`);
  const config = flags.strategy !== undefined ? { strategy: flags.strategy as Strategy } : {};
  try {
    resolveTamiyoConfig(config);
  } catch (error) {
    if (error instanceof TamiyoConfigError) throw new UsageError(error.message);
    throw error;
  }
  const decideEveryMs = positive("--decide-every-ms", flags.decideEveryMs);
  const pace = flags.decideEveryTicks !== undefined ? { decideEveryTicks: positive("--decide-every-ticks", flags.decideEveryTicks) } : { decideEveryMs };
  const connection = connectionFrom(flags);
  const name = flags.name ?? `${hostname()}-${process.pid}`;
  const say = (line: string) => console.error(`esper tamiyo ${name}: ${line}`);
  return runUntilSignal(
    Effect.gen(function* () {
      const bus = yield* connectWaiting(connection.url, `esper tamiyo ${name}`);
      let leading = false;
      let ready = false;
      yield* announcePresence(bus, {
        namespace: connection.namespace,
        serviceType: "esper.tamiyo",
        serviceId: name,
        capabilities: layers.map((l) => `steers:${l.layerId}`),
        metrics: () => ({ leader: leading ? 1 : 0 }),
        codec: connection.codec,
        ...(connection.hmacKey !== undefined ? { hmacKey: connection.hmacKey } : {}),
      });
      yield* runLeadingTamiyo(bus, {
        name,
        layers,
        config,
        namespace: connection.namespace,
        topology: connection.topology,
        ...pace,
        client: { codec: connection.codec, ...(connection.hmacKey !== undefined ? { hmacKey: connection.hmacKey } : {}) },
        onDecision: (d) => {
          // A decision as it is sent, then its answer as a line of its own: a reader joins them by command id.
          if (d.outcome === undefined) console.log(JSON.stringify({ layer: d.layerId, seed: d.seedId, kind: d.kind, action: d.action, reason: d.reason, numbers: d.numbers, tick: d.tick, command: d.commandId }));
          else console.log(JSON.stringify({ command: d.commandId, outcome: d.outcome }));
        },
        onRole: (change) => {
          leading = change.role === "leader";
          say(change.role === "leader" ? `leading (token ${change.token}), steering ${layers.map((l) => l.layerId).join(", ")}` : `standing by (${change.holder ?? "nobody"} leads)`);
          if (!ready) {
            ready = true;
            console.log("ready");
          }
        },
      });
      return yield* Effect.never;
    }),
    connection.url,
  );
};
