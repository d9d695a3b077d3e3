import { defineConfig } from 'vitest/config';

// Cross-package tests live in test/; each package runs its own tests from its folder (turbo `test`).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
