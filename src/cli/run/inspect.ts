/** The work of `esper inspect`, loaded only when it runs (so `--help` loads none of it). */
import { startInspectorRelay } from "../../runtime/inspector-relay.ts";
import type { InspectFlags } from "../inspect.ts";

export const runInspect = async (flags: InspectFlags): Promise<number> => {
  let relay;
  try {
    relay = await startInspectorRelay({ port: flags.port, host: flags.host });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(
      code === "EADDRINUSE" ? `port ${flags.port} on ${flags.host} is taken; choose another with --port (0 picks a free one)` : `cannot listen on ${flags.host}:${flags.port}: ${String(error)}`,
    );
  }
  console.log(`relay: ${relay.wsUrl}`);
  console.log(`open ${relay.pageUrl} in a browser (it embeds Stately's inspector from https://stately.ai/inspect)`);
  console.log(`then inspect a process with ESPER_INSPECT=${relay.wsUrl}, e.g. ESPER_INSPECT=${relay.wsUrl} npm run demo -- --quick`);
  console.error("Ctrl-C to stop");
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  const { actors, relayed } = relay.stats();
  await relay.stop();
  console.error(`esper inspect: relayed ${relayed} event(s) from ${actors} actor(s); stopped`);
  return 0;
};
