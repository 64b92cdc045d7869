import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildOpenApiDocument } from '../src/app.factory';
import { ERROR_CODES, ErrorCode } from '../src/common/errors/gateway-error';
import { parseEventStream, postJson, readJson, startGateway } from './support/gateway';
import { freePort, PROJECT_ROOT } from './support/litellm';

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

  describe('teaches', () => {
    const document = JSON.parse(readFileSync(COMMITTED, 'utf8'));
    const operations = Object.entries(document.paths as Record<string, Record<string, any>>).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({ route: `${method.toUpperCase()} ${path}`, path, operation })),
    );
    const requestExamples = (route: string) => {
      const { operation } = operations.find((entry) => entry.route === route)!;
      return Object.values(operation.requestBody.content['application/json'].examples as Record<string, { value: any }>).map((example) => example.value);
    };

    it('lists the model routes first, operations last', () => {
      expect(document.tags.map((tag: { name: string }) => tag.name)).toEqual(['llm', 'organizations', 'usage', 'openai', 'health', 'operations']);
      for (const tag of document.tags) expect(tag.description).toEqual(expect.any(String));
    });

    it('gives every route a summary', () => {
      expect(operations.filter(({ operation }) => !operation.summary).map((entry) => entry.route)).toEqual([]);
    });

    it('shows, under each error status of a /v1/ route, an example for each code with that status', () => {
      for (const { route, operation } of operations.filter((entry) => entry.path.startsWith('/v1/'))) {
        for (const [status, response] of Object.entries(operation.responses as Record<string, any>).filter(([status]) => Number(status) >= 400)) {
          const examples = Object.entries(response.content['application/json'].examples as Record<string, { value: any }>);
          expect([route, status, examples.length > 0]).toEqual([route, status, true]);
          for (const [code, { value }] of examples) {
            expect([route, code, ERROR_CODES[code as ErrorCode]?.status, value.statusCode, value.code]).toEqual([route, code, Number(status), Number(status), code]);
            expect(response.description).toContain(`\`${code}\``);
          }
        }
      }
      const chatErrors = operations.find((entry) => entry.route === 'POST /v1/chat')!.operation.responses;
      expect(Object.keys(chatErrors)).toEqual(expect.arrayContaining(['401', '413', '429', '502', '503', '504']));
      expect(Object.keys(chatErrors['401'].content['application/json'].examples)).toEqual(['UNAUTHORIZED']);
      expect(Object.keys(operations.find((entry) => entry.route === 'GET /v1/organizations/{id}')!.operation.responses['404'].content['application/json'].examples)).toEqual(['ORGANIZATION_NOT_FOUND']);
    });

    it('prefills a small plain chat, and an organization chat on its own model', () => {
      const [plain] = requestExamples('POST /v1/chat');
      expect(plain).toMatchObject({ stream: false });
      expect(plain.maxTokens).toBeLessThanOrEqual(200);
      expect(plain.temperature ?? 1).toBeLessThanOrEqual(1);
      const [organization] = requestExamples('POST /v1/organizations/{id}/chat');
      expect(organization).toMatchObject({ stream: false });
      expect(organization).not.toHaveProperty('model');
      const id = operations.find((entry) => entry.route === 'POST /v1/organizations/{id}/chat')!.operation.parameters.find((parameter: any) => parameter.name === 'id');
      expect(id.example ?? id.schema.example).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('declares the event stream of a streamed chat, with an example that is one', () => {
      for (const route of ['POST /v1/chat', 'POST /v1/organizations/{id}/chat', 'POST /openai/v1/chat/completions']) {
        const content = operations.find((entry) => entry.route === route)!.operation.responses['200'].content;
        expect(Object.keys(content)).toEqual(['application/json', 'text/event-stream']);
        const events = parseEventStream(content['text/event-stream'].example);
        expect(events[events.length - 1].data).toBe('[DONE]');
        for (const event of events.slice(0, -1)) expect(() => JSON.parse(event.data)).not.toThrow();
      }
    });

    it('states integer and array limits', () => {
      const chat = document.components.schemas.ChatRequestDto.properties;
      expect(chat.maxTokens).toMatchObject({ type: 'integer', minimum: 1, maximum: 32768 });
      expect(chat.messages).toMatchObject({ type: 'array', minItems: 1, maxItems: 256 });
      expect(chat.tools).toMatchObject({ type: 'array', maxItems: 128 });
      expect(document.components.schemas.ChatMessageDto.properties.toolCalls).toMatchObject({ maxItems: 128 });
      expect(document.components.schemas.OpenAiChatRequestDto.properties.messages).toMatchObject({ maxItems: 256 });
      expect(document.components.schemas.TokenUsageDto.properties.promptTokens.type).toBe('integer');
      const limit = operations.find((entry) => entry.route === 'GET /v1/organizations')!.operation.parameters.find((parameter: any) => parameter.name === 'limit');
      expect(limit.schema).toMatchObject({ type: 'integer', minimum: 1, maximum: 100 });
    });

    it('offers request examples the gateway accepts', async () => {
      // LiteLLM is not running: a body that passes validation is a 503 (or a 404 for the example organization), never a 400.
      const gateway = await startGateway({ NODE_ENV: 'test', LITELLM_URL: `http://127.0.0.1:${await freePort()}`, HEALTH_READY_INCLUDE_LITELLM: 'false' });
      try {
        for (const { route, path, operation } of operations.filter((entry) => entry.operation.requestBody?.content['application/json'].examples)) {
          const id = operation.parameters?.find((parameter: any) => parameter.name === 'id');
          const url = gateway.url + path.replace('{id}', id?.schema.example ?? '');
          for (const example of requestExamples(route)) {
            const response = await postJson(url, example);
            const answer = response.status === 503 || response.status === 404 ? 'accepted' : `${response.status} ${await response.text()}`;
            expect([route, example, answer]).toEqual([route, example, 'accepted']);
          }
        }
      } finally {
        await gateway.close();
      }
    });
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
