/**
 * The `esper` executable: runs the command line (program.ts) and exits with its code.
 */
import { runCli } from "./program.ts";

process.exitCode = await runCli(process.argv.slice(2));
