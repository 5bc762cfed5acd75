import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    // Servers in tests listen on 127.0.0.1 and every test cleans up after itself; a hanging
    // handle should fail the run, not stall it.
    testTimeout: 20_000,
    hookTimeout: 20_000,
    teardownTimeout: 5_000,
    pool: "forks",
  },
});
