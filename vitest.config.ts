import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: more parallel files only queue up behind each other and make timing-sensitive
    // concurrency tests (leases, kills) flaky.
    maxWorkers: 2,
  },
});
