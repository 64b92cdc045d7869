import { FakeUpstream, fakeToolCallId } from './support/fake-upstream';
import { TINY_PNG_BASE64 } from './support/fake-anthropic';
import { parseEventStream, postJson, readJson, RunningGateway, startGateway } from './support/gateway';

/**
 * Tool calling, structured output, images and the other agent fields on the native route, against the
 * OpenAI-protocol fake standing where LiteLLM would: what reaches LiteLLM, what comes back, plain and streamed,
 * and every limit a 400 that names it. The real LiteLLM, with both provider protocols, is in openai-compat.
 */
const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
const timeTool = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { city: { type: 'string' } } } } };

describe('agent-ready chat on /v1/chat (gateway → fake upstream)', () => {
  const upstream = new FakeUpstream();
  let gateway: RunningGateway;

  beforeAll(async () => {
    await upstream.start();
    gateway = await startGateway({ NODE_ENV: 'test', LITELLM_URL: upstream.url, LITELLM_API_KEY: 'sk-test', MODELS_CACHE_TTL_MS: '600000' });
  });

  afterAll(async () => {
    await gateway?.close();
    await upstream.stop();
  });

  beforeEach(() => upstream.reset());

  const chat = (body: object) => postJson(`${gateway.url}/v1/chat`, body);
  const ask = (text: string) => ({ messages: [{ role: 'user', content: text }], tools: [weatherTool, timeTool] });

  it('sends the tools, the choice and every sampling field upstream in OpenAI names, and gets tool calls back', async () => {
    const response = await chat({
      ...ask('weather please'),
      toolChoice: { type: 'function', function: { name: 'get_weather' } },
      parallelToolCalls: false,
      stop: ['END'],
      topP: 0.9,
      seed: 7,
      presencePenalty: 0.5,
      frequencyPenalty: -0.5,
    });

    expect(response.status).toBe(200);
    expect(await readJson(response)).toMatchObject({
      content: null,
      toolCalls: [{ id: fakeToolCallId('get_weather', 0), type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
      finishReason: 'tool_calls',
    });
    expect(upstream.requestsTo('/chat/completions')[0].body).toEqual({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'weather please' }],
      tools: [weatherTool, timeTool],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      parallel_tool_calls: false,
      stop: ['END'],
      top_p: 0.9,
      seed: 7,
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
    });
  });

  it('streams tool-call deltas that, joined per index, are exactly the plain answer\'s tool calls', async () => {
    const plain = await readJson(await chat(ask('weather and time in parallel')));
    expect(plain.toolCalls).toHaveLength(2);

    const response = await chat({ ...ask('weather and time in parallel'), stream: true });
    const events = parseEventStream(await response.text()).filter((event) => event.data !== '[DONE]').map((event) => JSON.parse(event.data));

    const deltas = events.filter((event) => event.toolCalls).flatMap((event) => event.toolCalls);
    expect(deltas[0]).toEqual({ index: 0, id: plain.toolCalls[0].id, type: 'function', function: { name: 'get_weather', arguments: '' } });
    const joined: Record<number, { id?: string; type?: string; function: { name?: string; arguments: string } }> = {};
    for (const delta of deltas) {
      const call = (joined[delta.index] ??= { function: { arguments: '' } });
      if (delta.id) call.id = delta.id;
      if (delta.type) call.type = delta.type;
      if (delta.function?.name) call.function.name = delta.function.name;
      call.function.arguments += delta.function?.arguments ?? '';
    }
    expect(Object.values(joined)).toEqual(plain.toolCalls);
    expect(events[events.length - 1]).toMatchObject({ model: 'gpt-4o', finishReason: 'tool_calls' });
  });

  it('carries a tool result turn: the assistant tool calls (content null) and the tool message, in OpenAI names', async () => {
    const calls = (await readJson(await chat(ask('weather please')))).toolCalls;
    const turn = {
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'weather please' },
        { role: 'assistant', content: null, toolCalls: calls },
        { role: 'tool', toolCallId: calls[0].id, content: '18 degrees' },
      ],
      tools: [weatherTool],
    };
    upstream.reset();

    const answer = await readJson(await chat(turn));

    expect(answer).toMatchObject({ content: 'Tool said: 18 degrees', finishReason: 'stop' });
    expect(upstream.requestsTo('/chat/completions')[0].body.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'weather please' },
      { role: 'assistant', content: null, tool_calls: calls },
      { role: 'tool', tool_call_id: calls[0].id, content: '18 degrees' },
    ]);
  });

  it('sends an assistant message with tool calls and empty text as content null (LiteLLM would fill empty text in)', async () => {
    const calls = [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }];
    await chat({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: '', toolCalls: calls }, { role: 'tool', toolCallId: 'call_1', content: 'cold' }], tools: [weatherTool] });

    expect(upstream.requestsTo('/chat/completions')[0].body.messages[1]).toEqual({ role: 'assistant', content: null, tool_calls: calls });
  });

  it('sends image parts, as https URLs and as data: URIs', async () => {
    const content = [
      { type: 'text', text: 'what is this' },
      { type: 'image_url', imageUrl: { url: 'https://images.example.com/cat.png', detail: 'low' } },
      { type: 'image_url', imageUrl: { url: `data:image/png;base64,${TINY_PNG_BASE64}` } },
    ];
    const answer = await readJson(await chat({ messages: [{ role: 'user', content }] }));

    expect(answer.content).toBe('Echo: what is this | Saw 2 images');
    expect(upstream.requestsTo('/chat/completions')[0].body.messages[0].content).toEqual([
      { type: 'text', text: 'what is this' },
      { type: 'image_url', image_url: { url: 'https://images.example.com/cat.png', detail: 'low' } },
      { type: 'image_url', image_url: { url: `data:image/png;base64,${TINY_PNG_BASE64}` } },
    ]);
  });

  it('asks for a JSON schema answer, and gets JSON', async () => {
    const schema = { type: 'object', properties: { city: { type: 'string' }, temperature: { type: 'number' } }, required: ['city'] };
    const answer = await readJson(await chat({ messages: [{ role: 'user', content: 'report' }], responseFormat: { type: 'json_schema', jsonSchema: { name: 'report', schema, strict: true } } }));

    expect(JSON.parse(answer.content)).toEqual({ city: 'Paris', temperature: 1.5 });
    expect(upstream.requestsTo('/chat/completions')[0].body.response_format).toEqual({ type: 'json_schema', json_schema: { name: 'report', schema, strict: true } });
  });

  it('answers 502 when JSON was asked for and the model wrote prose', async () => {
    upstream.respondNext({
      handler: (_request, response) => {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ id: 'c', model: 'gpt-4o', choices: [{ index: 0, message: { content: 'Sure! Here it is.' }, finish_reason: 'stop' }] }));
      },
    });
    const response = await chat({ messages: [{ role: 'user', content: 'json please' }], responseFormat: { type: 'json_object' } });

    expect(response.status).toBe(502);
    expect(await readJson(response)).toMatchObject({ code: 'UPSTREAM_INVALID_RESPONSE', message: expect.stringContaining('not JSON') });
  });

  const user = (content: unknown) => ({ messages: [{ role: 'user', content }] });
  it.each(([
    [{ ...user('x'), tools: Array.from({ length: 129 }, (_, index) => ({ type: 'function', function: { name: `t${index}` } })) }, 'tools must contain no more than 128 elements'],
    [{ ...user('x'), tools: [{ type: 'function', function: { name: 'get weather' } }] }, 'tools.0.function.name must be 1 to 64 letters, digits, _ or -'],
    [{ ...user('x'), tools: [{ type: 'retrieval', function: { name: 'x' } }] }, 'tools.0.type must be equal to function'],
    [{ ...user('x'), tools: [{ type: 'function', function: { name: 'deep', parameters: JSON.parse('{"a":'.repeat(17) + '1' + '}'.repeat(17)) } }] }, 'nested at most 16 levels'],
    [{ ...user('x'), tools: [weatherTool, weatherTool] }, 'the function get_weather is defined twice'],
    [{ ...user('x'), toolChoice: 'auto' }, 'toolChoice needs tools'],
    [{ ...user('x'), tools: [weatherTool], toolChoice: { type: 'function', function: { name: 'nope' } } }, 'toolChoice names nope, which is not among the tools'],
    [{ ...user('x'), toolChoice: 'sometimes', tools: [weatherTool] }, 'toolChoice must be "auto", "none", "required"'],
    [{ ...user('x'), stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop must be a string or an array of 1 to 4 strings'],
    [{ ...user('x'), topP: 1.5 }, 'topP must not be greater than 1'],
    [{ ...user('x'), seed: 1.5 }, 'seed must be an integer number'],
    [{ ...user('x'), presencePenalty: 3 }, 'presencePenalty must not be greater than 2'],
    [{ ...user('x'), responseFormat: { type: 'json_schema' } }, 'jsonSchema must be an object'],
    [{ ...user('x'), responseFormat: { type: 'yaml' } }, 'responseFormat.type must be one of the following values'],
    [user([{ type: 'image_url', imageUrl: { url: 'http://10.0.0.1/cat.png' } }]), 'content.0.imageUrl.url must be an https URL or a data:image/...;base64 URI'],
    [user([{ type: 'image_url', imageUrl: { url: 'data:text/html;base64,PGgxPg==' } }]), 'must be a data:image/(png|jpeg|gif|webp);base64,... URI'],
    [user([{ type: 'image_url', imageUrl: { url: 'https://x.example/a.png', detail: 'ultra' } }]), 'detail must be one of the following values: auto, low, high'],
    [user([{ type: 'text', text: 'x', extra: 1 }]), 'content.0.extra: property extra should not exist'],
    [user([{ type: 'audio', data: 'x' }]), 'content.0.type must be one of the following values: text, image_url'],
    [user(Array.from({ length: 65 }, () => ({ type: 'text', text: 'x' }))), 'content must have 1 to 64 parts'],
    [user(null), 'messages.0.content must not be null'],
    [{ messages: [{ role: 'system', content: [{ type: 'image_url', imageUrl: { url: 'https://x.example/a.png' } }] }] }, 'only user messages may carry images'],
    [{ messages: [{ role: 'tool', content: 'orphan' }] }, 'messages.0.toolCallId is required in a tool message'],
    [{ messages: [{ role: 'tool', toolCallId: 'call_9', content: 'orphan' }] }, 'toolCallId call_9 answers no tool call made before it'],
    [{ messages: [{ role: 'user', content: 'x', toolCalls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{}' } }] }] }, 'only assistant messages carry tool calls'],
    [{ messages: [{ role: 'assistant', content: null, toolCalls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: 'not json' } }] }] }, 'arguments must be a JSON object as text'],
    [{ messages: [{ role: 'assistant', content: null, toolCalls: [{ type: 'function', function: { name: 'f', arguments: '{}' } }] }] }, 'messages.0.toolCalls.0.id must be a string'],
    [{ ...user('x'), tools: [{ type: 'function', function: { name: 'f', api_base: 'http://evil' } }] }, 'property api_base should not exist'],
  ] as Array<[object, string]>).map(([body, message]) => [message, body] as const))('answers 400 "…%s…", sending nothing upstream', async (message, body) => {
    const response = await chat(body);

    expect(response.status).toBe(400);
    const error = await readJson(response);
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.message).toContain(message);
    expect(upstream.requestsTo('/chat/completions')).toHaveLength(0);
  });
});
