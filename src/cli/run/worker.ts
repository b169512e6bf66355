/** The work of `esper worker`, loaded only when it runs (so `--help` loads none of it). */
import { hostname } from "node:os";
import { Effect } from "effect";
import { runLayerOwner, type LayerOwner } from "../../bridge/owner.ts";
import { serveCoordination } from "../../coordination/coordinator.ts";
import { announcePresence } from "../../coordination/presence.ts";
import { isLayerId } from "../../protocol/streams.ts";
import { inspectionFrom, InspectionConfigError, type Inspection } from "../../runtime/inspection.ts";
import { LayerHost } from "../../runtime/layer-host.ts";
import { connectWaiting, connectionFrom, runUntilSignal } from "../connection.ts";
import { UsageError } from "../flags.ts";
import type { WorkerFlags } from "../worker.ts";

/**
 * `esper worker`: hosts layers on Redis. Waits for Redis when it is not there yet, prints `ready`
 * once every layer consumes, runs until SIGTERM/SIGINT, then finishes the batch in hand, commits
 * and acks it, and closes. Exits 3 when Redis lost a layer's data (see docs/operations.md).
 * ESPER_INSPECT (ws://... or file:PATH) inspects its actors, as in process.
 */
export const runWorker = async (values: WorkerFlags): Promise<number> => {
  const layers = values.layer.split(",").filter((l) => l !== "");
  if (layers.length === 0) throw new UsageError(`--layer ${values.layer}: name at least one layer`);
  const bad = layers.find((l) => !isLayerId(l));
  if (bad !== undefined) throw new UsageError(`--layer ${bad}: a layer id is 1 to 64 of [A-Za-z0-9_-]`);
  const seeds = Number(values.seeds);
  if (!Number.isInteger(seeds) || seeds < 1) throw new UsageError(`--seeds ${values.seeds}: a positive integer`);
  const connection = connectionFrom(values);
  const consumer = values.consumer ?? `${hostname()}-${process.pid}`;
  let inspection: Inspection | null;
  try {
    inspection = inspectionFrom(process.env.ESPER_INSPECT);
  } catch (error) {
    if (error instanceof InspectionConfigError) throw new UsageError(error.message);
    throw error;
  }

  return runUntilSignal(
    Effect.gen(function* () {
      // Stopped last (acquired first): the actors' final events reach the inspector before it closes.
      if (inspection) yield* Effect.addFinalizer(() => Effect.promise(() => inspection.stop()));
      const bus = yield* connectWaiting(connection.url, `esper worker ${consumer}`);
      const say = (line: string) => console.error(`esper worker ${consumer}: ${line}`);
      const placed = new Set<string>();
      let ready = false;
      const owners: LayerOwner[] = [];
      // Announced first, so its last heartbeat (stopped) goes out after the layers stopped.
      yield* announcePresence(bus, {
        namespace: connection.namespace,
        serviceType: "esper.worker",
        serviceId: consumer,
        capabilities: layers.map((l) => `layer:${l}`),
        metrics: () => ({ owner: owners.filter((o) => o.role() === "owner").length, standby: owners.filter((o) => o.role() === "standby").length }),
        codec: connection.codec,
        ...(connection.hmacKey !== undefined ? { hmacKey: connection.hmacKey } : {}),
      });
      // Other programs' lock, election and barrier requests: answered by whichever worker reads them.
      yield* serveCoordination(bus, {
        namespace: connection.namespace,
        consumer,
        source: `esper.worker.${consumer}`,
        codec: connection.codec,
        ...(connection.hmacKey !== undefined ? { hmacKey: connection.hmacKey } : {}),
      }).pipe(Effect.catch((error) => Effect.sync(() => say(`answering no coordination requests: ${error.message}`))));
      for (const layerId of layers) {
        owners.push(
          yield* runLayerOwner(bus, layerId, () => new LayerHost({ layerId, numSeeds: seeds, source: `esper.worker.${consumer}`, ...(inspection ? { inspect: inspection.observer } : {}) }), {
            namespace: connection.namespace,
            topology: connection.topology,
            codec: connection.codec,
            consumer,
            ordering: values.ordering,
            ...(connection.hmacKey !== undefined ? { hmacKey: connection.hmacKey } : {}),
            onRole: (change) => {
              say(change.role === "owner" ? `layer ${layerId}: owner (lease token ${change.token})` : `layer ${layerId}: standby (held by ${change.holder ?? "nobody"})`);
              placed.add(layerId);
              // Ready once every layer is served here or waits here as a standby.
              if (!ready && placed.size === layers.length) {
                ready = true;
                console.log("ready");
                say(`hosting ${layers.join(", ")} (${seeds} seeds each) on ${connection.url}, namespace ${connection.namespace}${connection.topology === "reference" ? ", reference topology" : ""}; SIGTERM to stop`);
              }
            },
          }),
        );
      }
      // Runs until a signal; a layer whose data Redis lost ends the worker (and says how to recover).
      return yield* Effect.raceAll(owners.map((owner) => owner.failed));
    }),
    connection.url,
  );
};
