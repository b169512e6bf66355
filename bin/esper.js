#!/usr/bin/env node
// The esper command. Installed, it runs the compiled CLI (dist/). In a clone, where the sources
// are, it runs them through tsx, so the command never lags behind an edit for want of a build.
import { existsSync } from "node:fs";

const source = new URL("../src/cli/main.ts", import.meta.url);
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  await import(source.href);
} else {
  await import("../dist/src/cli/main.js");
}
