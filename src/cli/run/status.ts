/** The work of `esper status`, loaded only when it runs (so `--help` loads none of it). */
import { Effect } from "effect";
import { makeRedisBus } from "../../bus/redis-bus.ts";
import { readStatus, LAG_CAP, type ClusterStatus } from "../../coordination/status.ts";
import { isLayerId } from "../../protocol/streams.ts";
import { connectionFrom, runUntilSignal } from "../connection.ts";
import { UsageError } from "../flags.ts";
import type { StatusFlags } from "../status.ts";

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

const render = (s: ClusterStatus): string => {
  const lines: string[] = [];
  const silent = s.services.filter((x) => x.silent).length;
  const live = s.services.filter((x) => !x.silent && !x.stopped).length;
  lines.push(`services: ${live} live, ${silent} stopped beating, ${s.services.filter((x) => x.stopped).length} stopped`);
  for (const x of s.services) {
    const layers = x.capabilities.filter((c) => c.startsWith("layer:")).map((c) => c.slice(6));
    const state = x.stopped ? "stopped" : x.silent ? `STOPPED BEATING (silent ${x.lastBeatAgoMs === null ? "since it announced" : seconds(x.lastBeatAgoMs)}, beats every ${seconds(x.heartbeatMs)})` : `${x.status}, last beat ${seconds(x.lastBeatAgoMs ?? 0)} ago`;
    const figures = Object.entries(x.metrics).filter(([k]) => k !== "stopped").map(([k, v]) => `${k} ${v}`).join(", ");
    lines.push(`  ${x.id}  ${x.type}${layers.length > 0 ? `  layers ${layers.join(",")}` : ""}  ${state}  up ${x.uptimeSeconds.toFixed(0)} s${figures ? `  (${figures})` : ""}`);
  }
  lines.push(`layers: ${s.layers.length}`);
  for (const l of s.layers) {
    lines.push(
      `  ${l.layerId}  ${l.owner === null ? "NO OWNER" : `owner ${l.owner.holder} (token ${l.owner.token})`}  pending ${l.pending}  lag ${l.lag >= LAG_CAP ? `${LAG_CAP}+` : l.lag}  dead letters ${l.deadLetters}`,
    );
  }
  return lines.join("\n");
};

export const runStatus = async (flags: StatusFlags): Promise<number> => {
  const layers = flags.layer?.split(",").filter((l) => l !== "");
  const bad = layers?.find((l) => !isLayerId(l));
  if (bad !== undefined) throw new UsageError(`--layer ${bad}: a layer id is 1 to 64 of [A-Za-z0-9_-]`);
  const connection = connectionFrom(flags);
  return runUntilSignal(
    Effect.gen(function* () {
      const bus = yield* makeRedisBus({ url: connection.url });
      const status = yield* readStatus(bus, { namespace: connection.namespace, topology: connection.topology, ...(layers ? { layers } : {}), now: Date.now() });
      console.log(flags.json ? JSON.stringify(status, null, 2) : render(status));
      // Something to act on: a service that stopped beating, or a layer nobody serves.
      return status.services.some((x) => x.silent) || status.layers.some((l) => l.owner === null) ? 1 : 0;
    }),
    connection.url,
  );
};
