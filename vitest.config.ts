import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    // Copies procmond's runtime where another uid can read it (see the file).
    globalSetup: ["test/setup/runtime-copy.ts"],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Integration suites each start their own daemon on their own socket.
    fileParallelism: true,
    reporters: ["default", ["json", { outputFile: ".vitest-report.json" }]],
  },
});
