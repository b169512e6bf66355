/**
 * The `esper` executable: runs the command line (program.ts) and exits with its code.
 */
import { runCli } from "./program.ts";

// Output piped into a reader that stopped (`esper events | head`) ends the command quietly, as a Unix tool does.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw error;
  });
}

process.exitCode = await runCli(process.argv.slice(2));
