import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Tests share one Redis but each uses its own namespace, so files may run in parallel;
    // the machine has 2 cores, so more workers only add contention.
    maxWorkers: 2,
    reporters: process.env.CI ? ["default", ["json", { outputFile: ".ci/vitest-report.json" }]] : ["default"],
  },
});
