import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildOpenApiDocument } from '../src/app.factory';
import { readJson, startGateway } from './support/gateway';
import { PROJECT_ROOT } from './support/litellm';

const COMMITTED = join(PROJECT_ROOT, 'openapi.json');
const PRODUCTION_KEY = 'openapi-test-key-0123456789';

/** The committed openapi.json is what the code generates; `npm run openapi` rewrites it. */
describe('OpenAPI document', () => {
  it('matches openapi.json', async () => {
    const gateway = await startGateway({ NODE_ENV: 'test', SWAGGER_ENABLED: undefined });
    try {
      const generated = `${JSON.stringify(buildOpenApiDocument(gateway.app), null, 2)}\n`;
      if (process.env.UPDATE_OPENAPI === '1') writeFileSync(COMMITTED, generated);
      expect(generated).toBe(readFileSync(COMMITTED, 'utf8'));

      // And it is what /docs-json serves.
      expect(await readJson(await fetch(`${gateway.url}/docs-json`))).toEqual(JSON.parse(generated));
      expect((await fetch(`${gateway.url}/docs`)).status).toBe(200);
    } finally {
      await gateway.close();
    }
  });

  it('documents every route with its error responses', () => {
    const document = JSON.parse(readFileSync(COMMITTED, 'utf8'));
    const operations = Object.entries(document.paths as Record<string, Record<string, { responses: object }>>).flatMap(
      ([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ route: `${method.toUpperCase()} ${path}`, operation })),
    );

    expect(operations.map((entry) => entry.route).sort()).toEqual([
      'DELETE /v1/organizations/{id}',
      'GET /health',
      'GET /health/live',
      'GET /health/ready',
      'GET /metrics',
      'GET /openai/v1/models',
      'GET /v1/models',
      'GET /v1/organizations',
      'GET /v1/organizations/{id}',
      'GET /v1/organizations/{id}/limits',
      'GET /v1/organizations/{id}/usage',
      'GET /v1/usage',
      'GET /v1/usage/records',
      'PATCH /v1/organizations/{id}',
      'POST /openai/v1/chat/completions',
      'POST /openai/v1/embeddings',
      'POST /v1/chat',
      'POST /v1/embeddings',
      'POST /v1/organizations',
      'POST /v1/organizations/{id}/chat',
    ]);
    for (const { route, operation } of operations.filter((entry) => entry.route.includes('/v1/'))) {
      expect([route, Object.keys(operation.responses).some((status) => status.startsWith('4'))]).toEqual([route, true]);
    }
    expect(document.components.schemas.ChatRequestDto.properties.temperature).toMatchObject({ minimum: 0, maximum: 2 });
  });

  it('is off in production unless SWAGGER_ENABLED=true', async () => {
    const production = await startGateway({ NODE_ENV: 'production', ALLOW_EMBEDDED_DATABASE: 'true', LITELLM_API_KEY: 'sk-prod', GATEWAY_API_KEYS: PRODUCTION_KEY, SWAGGER_ENABLED: undefined });
    try {
      expect((await fetch(`${production.url}/docs-json`)).status).toBe(404);
      expect((await fetch(`${production.url}/docs`)).status).toBe(404);
    } finally {
      await production.close();
    }
    const opted = await startGateway({ NODE_ENV: 'production', ALLOW_EMBEDDED_DATABASE: 'true', LITELLM_API_KEY: 'sk-prod', GATEWAY_API_KEYS: PRODUCTION_KEY, SWAGGER_ENABLED: 'true' });
    try {
      expect((await fetch(`${opted.url}/docs-json`)).status).toBe(200);
    } finally {
      await opted.close();
      process.env.NODE_ENV = 'test';
      delete process.env.SWAGGER_ENABLED;
      delete process.env.ALLOW_EMBEDDED_DATABASE;
    }
  });
});
