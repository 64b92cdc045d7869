import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import OpenAI, { BadRequestError, RateLimitError } from 'openai';
import { createTestDatabase, TestDatabase } from './support/database';
import { FakeAnthropic, TINY_PNG_BASE64 } from './support/fake-anthropic';
import { FakeUpstream, fakeEmbedding } from './support/fake-upstream';
import { parseEventStream, postJson, readJson, RunningGateway, startGateway } from './support/gateway';
import { PROJECT_ROOT, RunningLiteLLM, startLiteLLM } from './support/litellm';

/**
 * The agent loop (ask → tool call → tool result → answer) through the gateway and the real LiteLLM, against both
 * provider protocols: gpt-4o on the OpenAI-protocol fake, claude-3-5-sonnet on the Anthropic Messages fake (so
 * LiteLLM's OpenAI ⇄ Anthropic translation runs, where its users' tool-call bugs live). Driven through the native
 * /v1/chat and through clients no one here wrote: the openai npm package and the official Python openai package,
 * pointed at /openai/v1. Usage lands in the ledger (real PostgreSQL); limits apply.
 */

const ADMIN_KEY = 'agents-test-admin-key-0123456789';
const CALLER_KEY = 'agents-test-caller-key-01234567';
const admin = { authorization: `Bearer ${ADMIN_KEY}` };
const caller = { authorization: `Bearer ${CALLER_KEY}` };
const PYTHON = join(PROJECT_ROOT, '.tools', 'litellm-venv', 'bin', 'python');

const weatherTool = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
const timeTool = {
  type: 'function' as const,
  function: { name: 'get_time', description: 'The local time in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
};
const TOOLS = [weatherTool, timeTool];

/** What each fake model answers once it has the tool's result, and the ids it gives its calls. */
const PROTOCOLS = [
  {
    model: 'gpt-4o',
    protocol: 'OpenAI',
    callIds: ['call_0_get_weather', 'call_1_get_time'],
    afterTool: () => 'Tool said: 18 degrees',
  },
  {
    model: 'claude-3-5-sonnet',
    protocol: 'Anthropic',
    callIds: ['toolu_010get_weather', 'toolu_011get_time'],
    afterTool: (id: string) => `Tool ${id} said: 18 degrees`,
  },
] as const;

interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** The native stream's tool-call deltas joined per index, as a caller would assemble them. */
function joinToolCallDeltas(events: any[]): ToolCall[] {
  const joined: Array<{ id?: string; type?: string; function: { name?: string; arguments: string } }> = [];
  for (const delta of events.filter((event) => event.toolCalls).flatMap((event) => event.toolCalls)) {
    const call = (joined[delta.index] ??= { function: { arguments: '' } });
    if (delta.id) call.id = delta.id;
    if (delta.type) call.type = delta.type;
    if (delta.function?.name) call.function.name = delta.function.name;
    call.function.arguments += delta.function?.arguments ?? '';
  }
  return joined as ToolCall[];
}

describe('agents through the gateway: both protocols behind the real LiteLLM, stock OpenAI SDKs', () => {
  const openAiProvider = new FakeUpstream();
  const anthropic = new FakeAnthropic();
  let litellm: RunningLiteLLM;
  let gateway: RunningGateway;
  let database: TestDatabase;
  let sdk: OpenAI;

  beforeAll(async () => {
    await openAiProvider.start();
    await anthropic.start();
    database = await createTestDatabase();
    litellm = await startLiteLLM(join(__dirname, 'support', 'litellm.agents.test-config.yaml'), {
      FAKE_UPSTREAM_API_BASE: `${openAiProvider.url}/v1`,
      FAKE_PROVIDER_API_KEY: 'sk-fake-provider-key',
      FAKE_ANTHROPIC_API_BASE: anthropic.url,
      FAKE_ANTHROPIC_API_KEY: 'sk-ant-fake-key',
    });
    gateway = await startGateway({
      NODE_ENV: 'test',
      LITELLM_URL: litellm.url,
      LITELLM_API_KEY: litellm.masterKey,
      DATABASE_URL: database.url,
      GATEWAY_API_KEYS: CALLER_KEY,
      GATEWAY_ADMIN_API_KEYS: ADMIN_KEY,
      USAGE_FLUSH_INTERVAL_MS: '100',
    });
    sdk = new OpenAI({ baseURL: `${gateway.url}/openai/v1`, apiKey: CALLER_KEY, maxRetries: 0 });
  }, 180_000);

  afterAll(async () => {
    await gateway?.close();
    await litellm?.stop();
    await database?.drop();
    await openAiProvider.stop();
    await anthropic.stop();
    delete process.env.DATABASE_URL;
  });

  beforeEach(() => {
    openAiProvider.reset();
    anthropic.reset();
  });

  const createOrganization = async (body: object) => {
    const response = await postJson(`${gateway.url}/v1/organizations`, { name: `Agents ${randomUUID()}`, ...body }, admin);
    expect(response.status).toBe(201);
    return (await readJson(response)).id as string;
  };
  const nativeChat = (body: object, path = '/v1/chat', headers: Record<string, string> = {}) =>
    postJson(`${gateway.url}${path}`, body, { ...caller, ...headers });
  const nativeStream = async (body: object, path = '/v1/chat') => {
    const response = await nativeChat({ ...body, stream: true }, path);
    expect(response.status).toBe(200);
    const events = parseEventStream(await response.text());
    expect(events[events.length - 1].data).toBe('[DONE]');
    expect(events.filter((event) => event.event === 'error')).toEqual([]);
    return events.slice(0, -1).map((event) => JSON.parse(event.data));
  };
  const usageRows = async (requestId: string, count: number) => {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const rows = await database.query<any>('SELECT * FROM usage_records WHERE request_id = $1 ORDER BY attempt', [requestId]);
      if (rows.length >= count || Date.now() > deadline) return rows;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  describe.each(PROTOCOLS)('$model ($protocol protocol behind LiteLLM)', ({ model, callIds, afterTool }) => {
    const ask = (text: string) => [{ role: 'user' as const, content: text }];
    const toolTurn = (text: string, calls: ToolCall[], results: string[]) => [
      ...ask(text),
      { role: 'assistant' as const, content: null, toolCalls: calls },
      ...calls.map((call, position) => ({ role: 'tool' as const, toolCallId: call.id, content: results[position] })),
    ];

    it('runs the agent loop on /v1/chat, plain: a tool call, then the answer built on its result', async () => {
      const asked = await readJson(await nativeChat({ model, messages: ask('weather in Paris?'), tools: TOOLS }));
      expect(asked).toMatchObject({
        model,
        content: null,
        finishReason: 'tool_calls',
        toolCalls: [{ id: callIds[0], type: 'function', function: { name: 'get_weather' } }],
      });
      expect(JSON.parse(asked.toolCalls[0].function.arguments)).toEqual({ city: 'Paris' });

      const answered = await readJson(await nativeChat({ model, messages: toolTurn('weather in Paris?', asked.toolCalls, ['18 degrees']), tools: TOOLS }));

      expect(answered).toMatchObject({ model, content: afterTool(callIds[0]), finishReason: 'stop' });
      expect(answered.toolCalls).toBeUndefined();
    });

    it('runs the agent loop on /v1/chat, streamed: parallel tool-call deltas join into the plain call, then the answer', async () => {
      const plain = await readJson(await nativeChat({ model, messages: ask('weather and time, in parallel'), tools: TOOLS }));
      expect(plain.toolCalls.map((call: ToolCall) => [call.id, call.function.name])).toEqual([
        [callIds[0], 'get_weather'],
        [callIds[1], 'get_time'],
      ]);

      const events = await nativeStream({ model, messages: ask('weather and time, in parallel'), tools: TOOLS });
      const calls = joinToolCallDeltas(events);
      expect(calls.map((call) => ({ ...call, function: { ...call.function, arguments: JSON.parse(call.function.arguments) } }))).toEqual(
        plain.toolCalls.map((call: ToolCall) => ({ ...call, function: { ...call.function, arguments: JSON.parse(call.function.arguments) } })),
      );
      expect(events[events.length - 1]).toMatchObject({ model, finishReason: 'tool_calls' });

      const answer = await nativeStream({ model, messages: toolTurn('weather and time, in parallel', calls, ['18 degrees', '9 pm']), tools: TOOLS });
      const text = answer.map((event) => event.content ?? '').join('');
      expect(text).toContain('18 degrees');
      expect(text).toContain('9 pm');
      expect(answer[answer.length - 1]).toMatchObject({ finishReason: 'stop' });
    });

    it('runs the agent loop through the openai npm SDK on /openai/v1, plain', async () => {
      const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'user', content: 'weather in Paris?' }];
      const asked = await sdk.chat.completions.create({ model, messages, tools: TOOLS });
      const message = asked.choices[0].message;
      expect(asked.choices[0].finish_reason).toBe('tool_calls');
      expect(message.tool_calls).toEqual([{ id: callIds[0], type: 'function', function: { name: 'get_weather', arguments: expect.any(String) } }]);

      messages.push(message, { role: 'tool', tool_call_id: message.tool_calls![0].id, content: '18 degrees' });
      const answered = await sdk.chat.completions.create({ model, messages, tools: TOOLS });

      expect(answered.choices[0].message.content).toBe(afterTool(callIds[0]));
      expect(answered.model).toBe(model);
      expect(answered.usage!.total_tokens).toBeGreaterThan(0);
    });

    it('runs the agent loop through the openai npm SDK on /openai/v1, streamed, parallel calls assembled by the SDK', async () => {
      const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'user', content: 'weather and time, in parallel' }];
      const asked = await sdk.chat.completions.stream({ model, messages, tools: TOOLS, stream_options: { include_usage: true } }).finalChatCompletion();
      const message = asked.choices[0].message;
      expect(asked.choices[0].finish_reason).toBe('tool_calls');
      expect(message.tool_calls!.map((call) => [call.id, call.type === 'function' && call.function.name])).toEqual([
        [callIds[0], 'get_weather'],
        [callIds[1], 'get_time'],
      ]);
      for (const call of message.tool_calls!) expect(JSON.parse(call.type === 'function' ? call.function.arguments : '')).toEqual({ city: 'Paris' });
      expect(asked.usage!.completion_tokens).toBeGreaterThan(0);

      messages.push(
        { role: 'assistant', content: null, tool_calls: message.tool_calls },
        { role: 'tool', tool_call_id: message.tool_calls![0].id, content: '18 degrees' },
        { role: 'tool', tool_call_id: message.tool_calls![1].id, content: '9 pm' },
      );
      const answered = await sdk.chat.completions.stream({ model, messages, tools: TOOLS }).finalChatCompletion();

      expect(answered.choices[0].message.content).toContain('18 degrees');
      expect(answered.choices[0].message.content).toContain('9 pm');
      expect(answered.choices[0].finish_reason).toBe('stop');
    });

    it('records every call of the loop in the usage ledger, streams included, with the tokens the provider reported', async () => {
      const requestIds = [randomUUID(), randomUUID()];
      const plain = await nativeChat({ model, messages: ask('weather in Paris?'), tools: TOOLS }, '/v1/chat', { 'x-request-id': requestIds[0] });
      const plainAnswer = await readJson(plain);
      const streamed = await sdk.chat.completions
        .stream({ model, messages: [{ role: 'user', content: 'weather in Paris?' }], tools: TOOLS, stream_options: { include_usage: true } }, { headers: { 'x-request-id': requestIds[1] } })
        .finalChatCompletion();

      const [plainRow] = await usageRows(requestIds[0], 1);
      const [streamRow] = await usageRows(requestIds[1], 1);
      expect(plainRow).toMatchObject({ model, outcome: 'ok', tokens_estimated: false, total_tokens: plainAnswer.usage.totalTokens, route: '/v1/chat' });
      expect(streamRow).toMatchObject({
        model,
        outcome: 'ok',
        tokens_estimated: false,
        prompt_tokens: streamed.usage!.prompt_tokens,
        completion_tokens: streamed.usage!.completion_tokens,
        route: '/openai/v1/chat/completions',
      });
    });
  });

  describe('the Anthropic protocol: system prompt, image, structured output', () => {
    const schema = { type: 'object', properties: { city: { type: 'string' }, temperature: { type: 'number' } }, required: ['city', 'temperature'] };

    it('moves the system prompt to Anthropic\'s system and an image part to an image block, from both surfaces', async () => {
      const image = `data:image/png;base64,${TINY_PNG_BASE64}`;
      const native = await readJson(
        await nativeChat({
          model: 'claude-3-5-sonnet',
          messages: [
            { role: 'system', content: 'Be brief.' },
            { role: 'user', content: [{ type: 'text', text: 'what is this' }, { type: 'image_url', imageUrl: { url: image } }] },
          ],
        }),
      );
      const viaSdk = await sdk.chat.completions.create({
        model: 'claude-3-5-sonnet',
        messages: [
          { role: 'developer', content: 'Be brief.' },
          { role: 'user', content: [{ type: 'text', text: 'what is this' }, { type: 'image_url', image_url: { url: image, detail: 'low' } }] },
        ],
      });

      expect(native.content).toBe('Echo: what is this | System: Be brief. | Saw 1 image');
      expect(viaSdk.choices[0].message.content).toBe(native.content);
      for (const received of anthropic.received) {
        expect(received.body.system).toEqual([{ type: 'text', text: 'Be brief.' }]);
        expect(received.body.messages[0].content[1]).toEqual({ type: 'image', source: { type: 'base64', media_type: 'image/png', data: TINY_PNG_BASE64 } });
      }
    });

    it('asks Anthropic for a json_schema answer and gets the JSON, on both surfaces', async () => {
      const native = await readJson(
        await nativeChat({ model: 'claude-3-5-sonnet', messages: [{ role: 'user', content: 'report' }], responseFormat: { type: 'json_schema', jsonSchema: { name: 'report', schema } } }),
      );
      const viaSdk = await sdk.chat.completions.create({
        model: 'claude-3-5-sonnet',
        messages: [{ role: 'user', content: 'report' }],
        response_format: { type: 'json_schema', json_schema: { name: 'report', schema } },
      });

      expect(JSON.parse(native.content)).toEqual({ city: 'Paris', temperature: 1.5 });
      expect(JSON.parse(viaSdk.choices[0].message.content!)).toEqual({ city: 'Paris', temperature: 1.5 });
      expect(anthropic.received[0].body.output_format ?? anthropic.received[0].body.output_config?.format).toMatchObject({ type: 'json_schema', schema: expect.objectContaining({ properties: schema.properties }) });
    });
  });

  describe('organizations through the OpenAI surface', () => {
    it('routes x-organization-id with model organization-default to the organization\'s model, with its headers and limits', async () => {
      const organizationId = await createOrganization({ llmModel: 'claude-3-5-sonnet', llmFallbackModel: null, limits: { requestsPerMinute: 100 } });
      const requestId = randomUUID();

      const { data, response } = await sdk.chat.completions
        .create({ model: 'organization-default', messages: [{ role: 'user', content: 'hello organization' }] }, { headers: { 'x-organization-id': organizationId, 'x-request-id': requestId } })
        .withResponse();

      expect(data.model).toBe('claude-3-5-sonnet');
      expect(data.choices[0].message.content).toBe('Echo: hello organization');
      expect(response.headers.get('x-llm-model')).toBe('claude-3-5-sonnet');
      expect(response.headers.get('x-ratelimit-limit-requests')).toBe('100');
      expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('99');
      const [row] = await usageRows(requestId, 1);
      expect(row).toMatchObject({ organization_id: organizationId, model: 'claude-3-5-sonnet', outcome: 'ok', route: '/openai/v1/chat/completions' });
    });

    it('falls back across protocols: gpt-4o refused with a 404, the tool call served by Claude through Anthropic', async () => {
      const organizationId = await createOrganization({ llmModel: 'gpt-4o', llmFallbackModel: 'claude-3-5-sonnet' });
      openAiProvider.respondNext({ status: 404, body: { error: { message: 'The model gpt-4o does not exist', type: 'invalid_request_error', code: 'model_not_found' } } });
      const requestId = randomUUID();

      const { data, response } = await sdk.chat.completions
        .create(
          { model: 'organization-default', messages: [{ role: 'user', content: 'weather in Paris?' }], tools: TOOLS },
          { headers: { 'x-organization-id': organizationId, 'x-request-id': requestId } },
        )
        .withResponse();

      expect(data.model).toBe('claude-3-5-sonnet');
      expect(data.choices[0].message.tool_calls).toEqual([{ id: 'toolu_010get_weather', type: 'function', function: { name: 'get_weather', arguments: expect.any(String) } }]);
      expect(response.headers.get('x-llm-model')).toBe('claude-3-5-sonnet');
      expect(response.headers.get('x-llm-fallback-reason')).toBeTruthy();
      const rows = await usageRows(requestId, 2);
      expect(rows.map((row: any) => [row.attempt, row.model, row.outcome])).toEqual([
        [1, 'gpt-4o', 'MODEL_NOT_FOUND'],
        [2, 'claude-3-5-sonnet', 'ok'],
      ]);
    });

    it('raises the SDK\'s RateLimitError with Retry-After when the organization is over its limit, sending nothing upstream', async () => {
      const organizationId = await createOrganization({ limits: { requestsPerMinute: 1 } });
      const limited = sdk.withOptions({ defaultHeaders: { 'x-organization-id': organizationId } });
      await limited.chat.completions.create({ model: 'organization-default', messages: [{ role: 'user', content: 'first' }] });
      openAiProvider.reset();

      const refusal = await limited.chat.completions.create({ model: 'organization-default', messages: [{ role: 'user', content: 'second' }] }).catch((error: unknown) => error);

      expect(refusal).toBeInstanceOf(RateLimitError);
      const error = refusal as RateLimitError;
      expect(error.status).toBe(429);
      expect(error.code).toBe('RATE_LIMITED');
      expect(Number(error.headers?.get('retry-after'))).toBeGreaterThan(0);
      expect(openAiProvider.received).toHaveLength(0);
    });

    it('raises the SDK\'s BadRequestError naming the field, sending nothing upstream', async () => {
      const refusal = await sdk.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }], temperature: 5 }).catch((error: unknown) => error);

      expect(refusal).toBeInstanceOf(BadRequestError);
      const error = refusal as BadRequestError;
      expect(error.status).toBe(400);
      expect(error.code).toBe('VALIDATION_FAILED');
      expect(error.param).toBe('temperature');
      expect(error.message).toContain('temperature must not be greater than 2');
      expect(openAiProvider.received).toHaveLength(0);
    });
  });

  describe('embeddings and models through the openai npm SDK', () => {
    it('embeds with dimensions (the SDK asks for base64 and decodes it) and lists the served models', async () => {
      const embeddings = await sdk.embeddings.create({ model: 'text-embedding-3-small', input: ['one', 'two'], dimensions: 256 });
      const models = await sdk.models.list();

      expect(embeddings.data.map((item) => item.embedding.length)).toEqual([256, 256]);
      expect(embeddings.data[1].embedding[3]).toBeCloseTo(fakeEmbedding('two', 256)[3], 6);
      expect(openAiProvider.requestsTo('/embeddings')[0].body).toMatchObject({ dimensions: 256, input: ['one', 'two'] });
      expect(models.data.map((model) => model.id)).toEqual(expect.arrayContaining(['gpt-4o', 'claude-3-5-sonnet', 'text-embedding-3-small']));
    });
  });

  describe('the official Python openai package', () => {
    it('runs plain, streamed, tools on both protocols, embeddings, an organization, a 429 and a 400 as its usual classes', async () => {
      const organizationId = await createOrganization({ llmModel: 'claude-3-5-sonnet', llmFallbackModel: null, limits: { requestsPerMinute: 100 } });
      const limitedId = await createOrganization({ limits: { requestsPerMinute: 1 } });

      const { stdout } = await promisify(execFile)(PYTHON, [join(__dirname, 'support', 'openai-python-client.py')], {
        env: { ...process.env, GATEWAY_URL: gateway.url, GATEWAY_KEY: CALLER_KEY, ORGANIZATION_ID: organizationId, LIMITED_ORGANIZATION_ID: limitedId },
        timeout: 60_000,
      });
      const results = JSON.parse(stdout);

      expect(results.plain).toMatchObject({ content: 'Echo: hello from python', model: 'gpt-4o' });
      expect(results.stream.content).toBe('Echo: stream from python');
      expect(results.stream.total_tokens).toBeGreaterThan(0);
      expect(results['tools_gpt-4o']).toEqual({ finish_reason: 'tool_calls', call: { id: 'call_0_get_weather', name: 'get_weather', arguments: { city: 'Paris' } }, answer: 'Tool said: 18 degrees' });
      expect(results['tools_claude-3-5-sonnet']).toEqual({
        finish_reason: 'tool_calls',
        call: { id: 'toolu_010get_weather', name: 'get_weather', arguments: { city: 'Paris' } },
        answer: 'Tool toolu_010get_weather said: 18 degrees',
      });
      expect(results.embeddings).toEqual({ count: 2, lengths: [256, 256] });
      expect(results.organization).toEqual({ model_header: 'claude-3-5-sonnet', limit_header: '100', content: 'Echo: hello organization' });
      expect(results.rate_limited).toMatchObject({ class: 'RateLimitError', status: 429, code: 'RATE_LIMITED' });
      expect(Number(results.rate_limited.retry_after)).toBeGreaterThan(0);
      expect(results.bad_request).toMatchObject({ class: 'BadRequestError', status: 400, code: 'VALIDATION_FAILED', param: 'temperature' });
    }, 90_000);
  });
});
