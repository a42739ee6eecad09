// Jest runs in ESM mode (NestJS 12 and Terminus 12 ship ESM only). ts-jest
// transpiles each file on its own (isolatedModules, tsconfig.test.json: no
// type-check here, `npm run typecheck` does that) with the project decorator settings.
/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.test.json' }],
  },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testMatch: ['<rootDir>/test/**/*.spec.ts'],
  // The Node binaries of `npm run test:matrix` (each with a package.json of its own) are no modules of ours.
  modulePathIgnorePatterns: ['<rootDir>/.cache/'],
  testTimeout: 30000,
  reporters: ['default', '<rootDir>/test/support/summary-reporter.cjs'],
};
