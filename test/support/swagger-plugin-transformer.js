// Runs the @nestjs/swagger compiler plugin inside ts-jest, so the OpenAPI document the tests see is the
// one `nest build` produces. ts-jest expects { name, version, factory }; the plugin exports `before`.
const { before } = require('@nestjs/swagger/plugin');

module.exports = {
  name: 'nestjs-swagger-plugin',
  version: 1,
  factory: (tsCompiler, options) => before(options, tsCompiler.program),
};
