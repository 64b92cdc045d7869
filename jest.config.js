/**
 * One Jest run covers every suite: unit specs beside the code (src/**\/*.spec.ts) and the e2e and
 * contract suites (test/**\/*.e2e-spec.ts), which start the real app, a fake upstream, the real LiteLLM
 * and use the real Postgres.
 *
 * Nest 12 ships as ES modules. Node 20 can require() them, but Jest's module loader cannot before
 * Node 24.9, so Babel turns ES modules into CommonJS for the test run.
 */
module.exports = {
  testEnvironment: '<rootDir>/test/support/jest-environment.js',
  rootDir: '.',
  testRegex: '(src|test)/.*\\.(spec|e2e-spec)\\.ts$',
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
  testTimeout: 30_000,
  // Suites start servers on free ports; running them one at a time keeps LiteLLM's memory and CPU in check.
  maxWorkers: 1,
};
