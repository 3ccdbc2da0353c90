import { defineConfig } from 'vitest/config';

// Tests start real servers (OPA, HTTP, TLS, SQLite, kube-apiserver): generous timeouts, no retries.
export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', '.tools/**'],
    testTimeout: 60_000,
    hookTimeout: 300_000,
    pool: 'forks',
    globalSetup: ['test/dist-setup.ts', 'test/example-policies-setup.ts'],
    reporters: ['default'],
  },
});
