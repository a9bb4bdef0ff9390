import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // every core runs a test file (vitest's own default leaves one idle: on CI's 2 cores that is one
    // file at a time, while many files wait on child processes, Redis or the browser); override
    // with MEMSCOPE_TEST_WORKERS=N or vitest --maxWorkers=N
    maxWorkers: Number(process.env['MEMSCOPE_TEST_WORKERS'] ?? availableParallelism()),
    globalSetup: ['test/global-setup.ts'],
  },
});
