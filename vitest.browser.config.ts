import { defineConfig } from 'vitest/config';

// `npm run test:browser`: the web client in a real Chromium against the real test server. Kept out of `npm test`.
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    globalSetup: ['test/browser/globalSetup.ts'],
    fileParallelism: false,
    // A loaded 2-core machine runs the model, the server and a browser at once.
    testTimeout: 240_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
