import { defineConfig } from "vitest/config";

const shared = {
  testTimeout: 20_000,
  hookTimeout: 20_000,
  // Copies procmond's runtime where another uid can read it (see the file).
  globalSetup: ["test/setup/runtime-copy.ts"],
};

export default defineConfig({
  test: {
    // Integration suites each start their own daemon on their own socket.
    fileParallelism: true,
    reporters: ["default", ["json", { outputFile: ".vitest-report.json" }]],
    projects: [
      {
        test: {
          ...shared,
          name: "procmon",
          include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
        },
      },
      {
        // The core integration file once more with the daemon spawning from
        // Node, the fallback when procmon-shim was not built.
        test: {
          ...shared,
          name: "spawner-node",
          include: ["test/daemon-api.test.ts"],
          env: { PROCMON_TEST_SPAWNER: "node" },
        },
      },
    ],
  },
});
