/**
 * One Jest run covers every suite: unit specs beside the code (src/**\/*.spec.ts) and the e2e and
 * contract suites (test/**\/*.e2e-spec.ts), which start the real app, a fake upstream, the real LiteLLM
 * and use the real Postgres.
 *
 * Nest 12 ships as ES modules. Node 20 can require() them, but Jest's module loader cannot before
 * Node 24.9, so Babel turns ES modules into CommonJS for the test run.
 */
const project = {
  testEnvironment: '<rootDir>/test/support/jest-environment.js',
  rootDir: '.',
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json'],
  transform: {
    '^.+\\.ts$': [
      'ts-jest',
      {
        // TS151002: ts-jest's note about NodeNext module kinds; tsc itself compiles these files fine.
        diagnostics: { ignoreCodes: [151002] },
        astTransformers: {
          before: [
            {
              path: '<rootDir>/test/support/swagger-plugin-transformer.js',
              options: { classValidatorShim: true, introspectComments: true },
            },
          ],
        },
      },
    ],
    '^.+\\.[mc]?js$': [
      'babel-jest',
      {
        babelrc: false,
        configFile: false,
        sourceType: 'unambiguous',
        compact: false,
        plugins: [
          require.resolve('./test/support/babel-rename-esm-require.js'),
          'babel-plugin-transform-import-meta',
          '@babel/plugin-transform-dynamic-import', '@babel/plugin-transform-modules-commonjs'],
      },
    ],
  },
  // ES modules can sit anywhere in the dependency tree (Nest 12, and packages such as content-disposition),
  // so every .js file goes through Babel once (Jest caches the result); `unambiguous` leaves CommonJS alone.
  transformIgnorePatterns: [],
};

module.exports = {
  // Two projects, run side by side: most e2e suites wait on servers, timers and LiteLLM's start, so two
  // workers on this machine's two cores take about half the time; each suite starts its servers on free ports.
  projects: [
    { ...project, displayName: 'unit', testRegex: 'src/.*\\.spec\\.ts$' },
    { ...project, displayName: 'e2e', testRegex: 'test/.*\\.e2e-spec\\.ts$' },
  ],
  maxWorkers: 2,
  // A bound on a hung test, not a speed check (speed lives in `npm run bench`): suites that boot the app on the
  // embedded PostgreSQL took 13 s alone and over 30 s beside the others on a busy 2-core machine.
  testTimeout: 120_000,
};
