import { defineConfig } from 'vitest/config';

// The browser suite: the demo pages served by the real binary, driven in
// Debian's headless Chromium by playwright-core. One file at a time: each
// starts browsers of its own, and the machine may have two cores.
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 90_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
