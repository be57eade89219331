import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two files at a time even on two cores (vitest's default there is one): most of the end-to-end files'
    // time is spent waiting on processes and timers, and the suite takes about 5.5 minutes instead of 8.5.
    maxWorkers: 2,
  },
});
