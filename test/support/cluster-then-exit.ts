/**
 * A demo process that starts its cluster and then dies without stopping it (process.exit), for
 * test/cli/demo-cluster.test.ts: prints the processes' pids, then exits 3.
 * Arguments: redis URL, namespace.
 */
import { startCluster } from "../../src/demo/cluster.ts";
import { HOST_LAYERS, layerProfiles } from "../../src/demo/model.ts";

const [url, namespace] = process.argv.slice(2);
const cluster = await startCluster({
  redisUrl: url!,
  namespace: namespace!,
  layers: HOST_LAYERS.map((l) => ({ id: l.id, seeds: l.seeds })),
  profiles: layerProfiles(),
  strategy: "aggressive",
  decideEveryTicks: 5,
});
console.log(JSON.stringify(cluster.processes.map((p) => p.pid())));
process.exit(3);
