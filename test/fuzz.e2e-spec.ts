import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTestDatabase, TestDatabase } from './support/database';
import { FakeUpstream } from './support/fake-upstream';
import { postJson, readJson, RunningGateway, startGateway } from './support/gateway';

/**
 * Property: whatever body arrives, on every POST/PATCH route, the gateway answers 2xx or 4xx, never 5xx;
 * on a 4xx nothing reached the upstream; and the process stays up. Bodies come from fast-check (random
 * JSON, deep nesting, huge strings, wrong types, prototype keys, broken JSON), after a seed corpus of
 * known-nasty ones. A failing case found here goes into fuzz/regressions.json and is replayed forever.
 */
const ADMIN_KEY = 'fuzz-admin-key-0123456789abcdef';
/** `npm test` runs a lighter count; `npm run test:fuzz` the heavy one. */
const RUNS_PER_ROUTE = Number(process.env.FUZZ_RUNS_PER_ROUTE ?? 2_000);
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_121);
const seedCorpus: string[] = JSON.parse(readFileSync(join(__dirname, 'fuzz', 'seed-corpus.json'), 'utf8'));
const regressions: Array<{ route: string; body: string; found: string }> = JSON.parse(
  readFileSync(join(__dirname, 'fuzz', 'regressions.json'), 'utf8'),
);

const KEYS = [
  'messages', 'role', 'content', 'model', 'temperature', 'maxTokens', 'stream', 'input', 'name', 'id', 'llmModel', 'llmFallbackModel',
  'tools', 'toolChoice', 'toolCalls', 'toolCallId', 'responseFormat', 'stop', 'topP', 'seed', 'dimensions', 'limits',
  'tool_calls', 'tool_call_id', 'tool_choice', 'response_format', 'stream_options', 'max_tokens', 'encoding_format', 'n',
];
const NASTY_KEYS = ['__proto__', 'constructor', 'prototype', 'api_base', 'base_url', 'user_config', 'metadata', 'toString', 'hasOwnProperty'];

/** A value of any type, sometimes one the route expects, often not. */
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.constantFrom('user', 'system', 'assistant', 'gpt-4o', 'claude-3-5-sonnet', 'text-embedding-3-small', '', 'x'),
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 300 }),
);

const message = fc.record(
  { role: fc.oneof(fc.constantFrom('user', 'system', 'assistant'), anyValue), content: fc.oneof(fc.string(), anyValue) },
  { requiredKeys: [] },
);

/** The agent fields (issue 14) in both spellings: tools, tool calls, content parts, response formats. */
const part = fc.oneof(
  fc.record({ type: fc.constantFrom('text', 'image_url', 'audio'), text: anyValue }, { requiredKeys: [] }),
  fc.record({ type: fc.constant('image_url'), imageUrl: fc.record({ url: fc.oneof(fc.webUrl(), fc.constantFrom('data:image/png;base64,AAAA', 'data:text/html;base64,PGg+', 'http://10.0.0.1/x.png'), anyValue), detail: anyValue }, { requiredKeys: [] }) }, { requiredKeys: [] }),
  fc.record({ type: fc.constant('image_url'), image_url: fc.record({ url: fc.oneof(fc.webUrl(), anyValue) }, { requiredKeys: [] }) }, { requiredKeys: [] }),
);
const toolCall = fc.record(
  { id: fc.oneof(fc.string({ maxLength: 20 }), anyValue), type: fc.oneof(fc.constant('function'), anyValue), function: fc.record({ name: fc.oneof(fc.constantFrom('get_weather', 'f'), anyValue), arguments: fc.oneof(fc.json(), anyValue) }, { requiredKeys: [] }) },
  { requiredKeys: [] },
);
const tool = fc.record(
  { type: fc.oneof(fc.constant('function'), anyValue), function: fc.record({ name: fc.oneof(fc.constantFrom('get_weather', 'get time', ''), anyValue), description: anyValue, parameters: fc.oneof(fc.jsonValue({ maxDepth: 20 }), anyValue), strict: anyValue }, { requiredKeys: [] }) },
  { requiredKeys: [] },
);
const agentMessage = fc.record(
  {
    role: fc.oneof(fc.constantFrom('user', 'system', 'assistant', 'tool', 'developer'), anyValue),
    content: fc.oneof(fc.string(), fc.constant(null), fc.array(part, { maxLength: 4 }), anyValue),
    toolCalls: fc.oneof(fc.array(toolCall, { maxLength: 3 }), anyValue),
    tool_calls: fc.oneof(fc.array(toolCall, { maxLength: 3 }), anyValue),
    toolCallId: anyValue,
    tool_call_id: anyValue,
  },
  { requiredKeys: [] },
);
const format = fc.record({ type: fc.oneof(fc.constantFrom('text', 'json_object', 'json_schema'), anyValue), jsonSchema: anyValue, json_schema: anyValue }, { requiredKeys: [] });
const agentLike = fc.record(
  {
    model: fc.oneof(fc.constantFrom('gpt-4o', 'organization-default'), anyValue),
    messages: fc.oneof(fc.array(agentMessage, { maxLength: 5 }), anyValue),
    tools: fc.oneof(fc.array(tool, { maxLength: 3 }), anyValue),
    toolChoice: anyValue,
    tool_choice: anyValue,
    responseFormat: format,
    response_format: format,
    stop: anyValue,
    topP: anyValue,
    seed: anyValue,
    stream_options: anyValue,
    dimensions: anyValue,
    encoding_format: anyValue,
  },
  { requiredKeys: [] },
);

/** Objects shaped like the routes' bodies, with wrong types, extra and prototype keys mixed in. */
const bodyLike = fc.dictionary(fc.oneof(fc.constantFrom(...KEYS), fc.constantFrom(...NASTY_KEYS), fc.string()), anyValue, { maxKeys: 8 });
const chatLike = fc.record(
  {
    messages: fc.oneof(fc.array(message, { maxLength: 5 }), anyValue),
    model: anyValue,
    temperature: fc.oneof(fc.double({ min: -1, max: 3 }), anyValue),
    maxTokens: fc.oneof(fc.integer({ min: -5, max: 40_000 }), anyValue),
    stream: anyValue,
  },
  { requiredKeys: [] },
);

const rawBody: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.oneof(bodyLike, chatLike, agentLike, fc.jsonValue({ maxDepth: 6 })).map((value) => JSON.stringify(value) ?? 'null') },
  // Prototype keys JSON.stringify would never write, injected as text.
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...NASTY_KEYS), fc.jsonValue({ maxDepth: 2 })).map(([key, value]) => `{"${key}":${JSON.stringify(value) ?? 'null'},"messages":[{"role":"user","content":"x"}]}`) },
  // Deep nesting.
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }).map((depth) => `{"messages":${'['.repeat(depth)}${']'.repeat(depth)}}`) },
  // Huge strings, below and above the body limit.
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 1_300_000 }).map((length) => `{"messages":[{"role":"user","content":"${'a'.repeat(length)}"}],"input":"x","name":"n"}`) },
  // Broken JSON.
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
);

describe('fuzzed request validation', () => {
  const upstream = new FakeUpstream();
  let database: TestDatabase;
  let gateway: RunningGateway;
  let routes: Array<{ name: string; method: 'POST' | 'PATCH'; path: string }>;
  const tally = { sent: 0, generated: 0, serverErrors: 0 };

  beforeAll(async () => {
    await upstream.start();
    database = await createTestDatabase();
    gateway = await startGateway({
      LITELLM_URL: upstream.url,
      LITELLM_API_KEY: 'sk-test',
      GATEWAY_ADMIN_API_KEYS: ADMIN_KEY,
      DATABASE_URL: database.url,
      MODELS_CACHE_TTL_MS: '3600000',
      LOG_LEVEL: 'fatal',
    });
    const organization = await readJson(
      await postJson(`${gateway.url}/v1/organizations`, { name: 'Fuzz target' }, { authorization: `Bearer ${ADMIN_KEY}` }),
    );
    routes = [
      { name: 'chat', method: 'POST', path: '/v1/chat' },
      { name: 'embeddings', method: 'POST', path: '/v1/embeddings' },
      { name: 'create organization', method: 'POST', path: '/v1/organizations' },
      { name: 'organization chat', method: 'POST', path: `/v1/organizations/${organization.id}/chat` },
      { name: 'update organization', method: 'PATCH', path: `/v1/organizations/${organization.id}` },
      { name: 'OpenAI chat completions', method: 'POST', path: '/openai/v1/chat/completions' },
      { name: 'OpenAI embeddings', method: 'POST', path: '/openai/v1/embeddings' },
    ];
  }, 60_000);

  afterAll(async () => {
    process.stdout.write(
      `fuzz: ${tally.generated} generated bodies and ${tally.sent - tally.generated} corpus/regression bodies sent ` +
        `to ${routes?.length ?? 0} routes (seed ${SEED}); 5xx answers: ${tally.serverErrors}\n`,
    );
    await gateway?.close();
    await database?.drop();
    await upstream.stop();
    delete process.env.DATABASE_URL;
  });

  /** Sends one raw body and checks the property; returns a description of the violation, if any. */
  async function violation(route: { method: string; path: string }, body: string): Promise<string | undefined> {
    const before = upstream.received.length;
    const response = await fetch(`${gateway.url}${route.path}`, {
      method: route.method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
      body,
    });
    const text = await response.text();
    tally.sent += 1;
    if (response.status >= 500) {
      tally.serverErrors += 1;
      return `HTTP ${response.status}: ${text.slice(0, 300)}`;
    }
    if (response.status < 200 || (response.status >= 300 && response.status < 400)) return `HTTP ${response.status}`;
    if (response.status >= 400 && upstream.received.length !== before) return `HTTP ${response.status} but the upstream was called`;
    if (/\bat [\w.]+ \(|node_modules|\.ts:\d+/.test(text)) return `a stack trace leaked: ${text.slice(0, 300)}`;
    return undefined;
  }

  it('replays the seed corpus on every route', async () => {
    const failures: string[] = [];
    for (const route of routes) {
      for (const body of seedCorpus) {
        const problem = await violation(route, body);
        if (problem) failures.push(`${route.method} ${route.path} ${body.slice(0, 80)} → ${problem}`);
      }
    }
    expect(failures).toEqual([]);
  }, 120_000);

  it.each(regressions.map((regression) => [regression.found, regression] as const))(
    'regression: %s',
    async (_found, regression) => {
      const route = routes.find((candidate) => candidate.name === regression.route)!;
      expect(await violation(route, regression.body)).toBeUndefined();
    },
  );

  it(`holds for ${RUNS_PER_ROUTE} generated bodies on each POST/PATCH route`, async () => {
    for (const [index, route] of routes.entries()) {
      await fc.assert(
        fc.asyncProperty(rawBody, async (body) => {
          tally.generated += 1;
          const problem = await violation(route, body);
          if (problem) throw new Error(`${route.method} ${route.path}: ${problem}`);
        }),
        { numRuns: RUNS_PER_ROUTE, seed: SEED + index, endOnFailure: true },
      );
    }
    expect(tally.serverErrors).toBe(0);
    expect(tally.generated).toBeGreaterThanOrEqual(RUNS_PER_ROUTE * routes.length);
    // Still up, still answering.
    expect((await fetch(`${gateway.url}/health/live`)).status).toBe(200);
  }, 600_000);
});
