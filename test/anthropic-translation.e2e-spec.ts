import OpenAI, { RateLimitError } from 'openai';
import { join } from 'node:path';
import { FakeAnthropic, TINY_PNG_BASE64 } from './support/fake-anthropic';
import { RunningLiteLLM, startLiteLLM } from './support/litellm';

/**
 * What the pinned LiteLLM does between an OpenAI-format client and Anthropic's Messages API: the request it
 * sends, and the answer and stream chunks it gives back. Assertions are exact on purpose: a LiteLLM upgrade
 * that changes the translation fails here. Where today's behaviour is wrong, the test pins it and says so
 * ("LiteLLM bug"); /work/notes/anthropic-translation.md (outside the repo) holds the findings.
 *
 * Only LiteLLM is under test here, not the gateway's routes.
 */

const MODEL = 'claude-anthropic-fake'; // anthropic/claude-haiku-4-5-20251001: priced, native structured output
const LEGACY_MODEL = 'claude-legacy-fake'; // anthropic/claude-3-5-sonnet-20241022: not in LiteLLM's cost map

const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Weather for a city',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
        required: ['city'],
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'get_time',
      description: 'Local time in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  },
];
/** The same tools as LiteLLM sends them to Anthropic. */
const ANTHROPIC_TOOLS = TOOLS.map(({ function: { name, description, parameters } }) => ({
  name,
  description,
  input_schema: parameters,
  type: 'custom',
}));

const WEATHER_CALL = { id: 'toolu_010get_weather', name: 'get_weather' };
const TIME_CALL = { id: 'toolu_011get_time', name: 'get_time' };

const user = (content: unknown) => ({ role: 'user', content });

interface StreamedAnswer {
  status: number;
  headers: Headers;
  /** Every `data:` payload, parsed, except the final [DONE]. */
  chunks: any[];
  /** Milliseconds from the request to each chunk's arrival. */
  arrivals: number[];
  done: boolean;
  /** The body when the answer was not a stream. */
  text: string;
}

/** Chunk fields that differ on every call. */
function stable(chunk: any) {
  const { id, created, ...rest } = chunk;
  return rest;
}

describe('contract: OpenAI client → real LiteLLM → fake Anthropic (translation)', () => {
  const anthropic = new FakeAnthropic();
  let litellm: RunningLiteLLM;
  let client: OpenAI;

  beforeAll(async () => {
    await anthropic.start();
    litellm = await startLiteLLM(join(__dirname, 'support', 'litellm.anthropic.test-config.yaml'), {
      FAKE_ANTHROPIC_API_BASE: anthropic.url,
      FAKE_ANTHROPIC_API_KEY: 'sk-ant-fake-key',
    });
    client = new OpenAI({ baseURL: `${litellm.url}/v1`, apiKey: litellm.masterKey, maxRetries: 0 });
  }, 180_000);

  afterAll(async () => {
    await litellm?.stop();
    await anthropic.stop();
  });

  beforeEach(() => anthropic.reset());

  const post = (body: object) =>
    fetch(`${litellm.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${litellm.masterKey}` },
      body: JSON.stringify(body),
    });

  const complete = async (body: object) => {
    const response = await post({ model: MODEL, ...body });
    return { status: response.status, headers: response.headers, body: (await response.json()) as any };
  };

  const stream = async (body: object): Promise<StreamedAnswer> => {
    const started = Date.now();
    const response = await post({ model: MODEL, ...body, stream: true });
    const answer: StreamedAnswer = { status: response.status, headers: response.headers, chunks: [], arrivals: [], done: false, text: '' };
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const bytes of response.body!) {
      const text = decoder.decode(bytes as Uint8Array, { stream: true });
      answer.text += text;
      buffered += text;
      let end: number;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const data = buffered.slice(0, end).replace(/^data: /, '');
        buffered = buffered.slice(end + 2);
        if (data === '[DONE]') answer.done = true;
        else if (data) {
          answer.chunks.push(JSON.parse(data));
          answer.arrivals.push(Date.now() - started);
        }
      }
    }
    return answer;
  };

  /** The one Messages request LiteLLM sent for the call under test. */
  const sentBody = () => {
    const requests = anthropic.messages();
    expect(requests).toHaveLength(1);
    return requests[0].body;
  };

  const deltas = (answer: StreamedAnswer) => answer.chunks.map((chunk) => chunk.choices[0]);

  /** LiteLLM closes its Anthropic connection after it answers the client: wait for the fake to see it. */
  const upstreamClosed = async () => {
    const deadline = Date.now() + 5_000;
    while (!anthropic.messages()[0]?.closedByClient && Date.now() < deadline) await new Promise((done) => setTimeout(done, 50));
    return anthropic.messages()[0]?.closedByClient;
  };

  describe('plain text', () => {
    const hello = { messages: [user('hello through litellm')] };

    it('sends a Messages request with the default max_tokens and maps the answer, usage and cost', async () => {
      const { status, headers, body } = await complete(hello);

      expect(status).toBe(200);
      expect(sentBody()).toEqual({
        model: 'claude-haiku-4-5-20251001',
        messages: [{ role: 'user', content: [{ type: 'text', text: 'hello through litellm' }] }],
        // The model's whole output budget when the caller gives none: a gateway should send its own limit.
        max_tokens: 64000,
      });
      const [request] = anthropic.messages();
      expect(request.headers['x-api-key']).toBe('sk-ant-fake-key');
      expect(request.headers['anthropic-version']).toBe('2023-06-01');
      expect(request.headers['anthropic-beta']).toBeUndefined();

      expect(stable(body)).toEqual({
        model: MODEL,
        object: 'chat.completion',
        choices: [
          {
            index: 0,
            finish_reason: 'stop',
            message: {
              role: 'assistant',
              content: 'Echo: hello through litellm',
              provider_specific_fields: { citations: null, thinking_blocks: null },
            },
          },
        ],
        usage: {
          prompt_tokens: 3,
          completion_tokens: 4,
          total_tokens: 7,
          completion_tokens_details: { reasoning_tokens: 0, text_tokens: 4 },
          prompt_tokens_details: { cache_write_tokens: 0, cached_tokens: 0, text_tokens: 3, cache_creation_tokens: 0 },
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 0,
        },
      });
      // $1/M input, $5/M output: 3 × 1e-6 + 4 × 5e-6.
      expect(Number(headers.get('x-litellm-response-cost'))).toBeCloseTo(2.3e-5, 12);
      expect(headers.get('llm_provider-request-id')).toBe('req_fake');
    });

    it('streams one chunk per text_delta, the role on the first, and no usage unless asked for', async () => {
      const answer = await stream(hello);

      expect(answer.status).toBe(200);
      expect(sentBody()).toMatchObject({ stream: true });
      expect(sentBody().stream_options).toBeUndefined();
      expect(answer.chunks.map(stable)).toEqual([
        { object: 'chat.completion.chunk', model: MODEL, choices: [{ index: 0, delta: { role: 'assistant', content: 'Echo: hel' } }] },
        { object: 'chat.completion.chunk', model: MODEL, choices: [{ index: 0, delta: { content: 'lo throug' } }] },
        { object: 'chat.completion.chunk', model: MODEL, choices: [{ index: 0, delta: { content: 'h litellm' } }] },
        { object: 'chat.completion.chunk', model: MODEL, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
      ]);
      expect(new Set(answer.chunks.map((chunk) => chunk.id)).size).toBe(1);
      expect(answer.done).toBe(true);
      // Headers leave before the stream's cost is known: no cost header on streams, and a misleading 0.0 here.
      expect(answer.headers.get('x-litellm-response-cost')).toBeNull();
      expect(answer.headers.get('x-litellm-response-cost-original')).toBe('0.0');
    });

    it('with include_usage, ends with a usage chunk carrying a non-empty choices array and the cost', async () => {
      const answer = await stream({ ...hello, stream_options: { include_usage: true } });

      const usageChunk = answer.chunks[answer.chunks.length - 1];
      expect(answer.chunks).toHaveLength(5);
      expect(answer.chunks.slice(0, -1).every((chunk) => chunk.usage === undefined)).toBe(true);
      expect(usageChunk.choices).toEqual([{ index: 0, delta: {} }]);
      expect(usageChunk.usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
      expect(usageChunk.usage.cost).toBeCloseTo(2.3e-5, 12);
      expect(answer.done).toBe(true);
    });
  });

  describe('tool calls', () => {
    it('maps tools to Anthropic custom tools and one tool_use back to a tool call', async () => {
      const { body } = await complete({ tools: TOOLS, messages: [user('weather in Paris')] });

      expect(sentBody()).toEqual({
        model: 'claude-haiku-4-5-20251001',
        messages: [{ role: 'user', content: [{ type: 'text', text: 'weather in Paris' }] }],
        tools: ANTHROPIC_TOOLS,
        max_tokens: 64000,
      });
      expect(body.choices[0].finish_reason).toBe('tool_calls');
      expect(body.choices[0].message.content).toBeNull();
      expect(body.choices[0].message.tool_calls).toEqual([
        {
          // Not part of OpenAI's non-streamed format; see the next test for what it counts.
          index: 0,
          id: WEATHER_CALL.id,
          type: 'function',
          // Re-serialised by Python's json.dumps (", " and ": "), not the provider's bytes: the streamed
          // arguments of the same call have no spaces.
          function: { name: 'get_weather', arguments: '{"city": "Paris", "unit": "celsius"}' },
        },
      ]);
    });

    it('keeps parallel tool_use blocks apart, but numbers them by Anthropic content block (LiteLLM bug)', async () => {
      const parallel = await complete({ tools: TOOLS, messages: [user('weather and time in parallel')] });
      anthropic.reset();
      const withText = await complete({ tools: TOOLS, messages: [user('explain then call in parallel')] });

      const summary = (body: any) =>
        body.choices[0].message.tool_calls.map((call: any) => [call.index, call.id, call.function.name, call.function.arguments]);
      expect(summary(parallel.body)).toEqual([
        [0, WEATHER_CALL.id, 'get_weather', '{"city": "Paris", "unit": "celsius"}'],
        [1, TIME_CALL.id, 'get_time', '{"city": "Paris"}'],
      ]);
      // With a text block first, `index` is the content block's position (1, 2), where the stream says 0, 1.
      // AnthropicConfig.extract_response_content passes the block index to convert_tool_use_to_openai_format.
      expect(withText.body.choices[0].message.content).toBe('Calling get_weather and get_time.');
      expect(summary(withText.body)).toEqual([
        [1, WEATHER_CALL.id, 'get_weather', '{"city": "Paris", "unit": "celsius"}'],
        [2, TIME_CALL.id, 'get_time', '{"city": "Paris"}'],
      ]);
    });

    it('streams parallel calls with separate indexes, id and name once, one chunk per input_json_delta', async () => {
      const answer = await stream({
        tools: TOOLS,
        messages: [user('explain then call in parallel')],
        stream_options: { include_usage: true },
      });

      const start = (call: { id: string; name: string }, index: number) => ({
        index: 0,
        delta: { content: '', tool_calls: [{ id: call.id, type: 'function', index, function: { name: call.name, arguments: '' } }] },
      });
      const args = (index: number, fragment: string) => ({
        index: 0,
        delta: { content: '', tool_calls: [{ type: 'function', index, function: { arguments: fragment } }] },
      });
      expect(deltas(answer)).toEqual([
        { index: 0, delta: { role: 'assistant', content: 'Calling get' } },
        { index: 0, delta: { content: '_weather an' } },
        { index: 0, delta: { content: 'd get_time.' } },
        start(WEATHER_CALL, 0),
        args(0, ''),
        args(0, '{"city":"Pa'),
        args(0, 'ris","unit"'),
        args(0, ':"celsius"}'),
        start(TIME_CALL, 1),
        args(1, ''),
        args(1, '{"city'),
        args(1, '":"Par'),
        args(1, 'is"}'),
        { index: 0, delta: {}, finish_reason: 'tool_calls' },
        { index: 0, delta: {} },
      ]);
      expect(answer.chunks[answer.chunks.length - 1].usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 6, total_tokens: 11 });
      expect(answer.done).toBe(true);
    });

    it('passes input_json_delta fragments on as they come, with include_usage too (LiteLLM #38926 not seen here)', async () => {
      anthropic.respondNext({ eventGapMs: 100 });
      const answer = await stream({ tools: TOOLS, messages: [user('weather')], stream_options: { include_usage: true } });

      const argumentArrivals = answer.chunks
        .map((chunk, i) => (chunk.choices[0]?.delta?.tool_calls ? answer.arrivals[i] : undefined))
        .filter((arrival): arrival is number => arrival !== undefined);
      expect(argumentArrivals).toHaveLength(5); // the start, then "" and three fragments
      // The fake waits 100 ms between events: a burst at the end would put them within a few ms.
      expect(argumentArrivals[argumentArrivals.length - 1] - argumentArrivals[0]).toBeGreaterThan(200);
    });

    it('gives the openai SDK a stream it assembles into both calls', async () => {
      const runner = client.chat.completions.stream({
        model: MODEL,
        tools: TOOLS as OpenAI.Chat.Completions.ChatCompletionFunctionTool[],
        messages: [{ role: 'user', content: 'weather and time in parallel' }],
        stream_options: { include_usage: true },
      });
      const completion = await runner.finalChatCompletion();

      expect(completion.choices[0].finish_reason).toBe('tool_calls');
      expect(
        completion.choices[0].message.tool_calls?.map((call) => call.type === 'function' && [call.id, call.function.name, JSON.parse(call.function.arguments)]),
      ).toEqual([
        [WEATHER_CALL.id, 'get_weather', { city: 'Paris', unit: 'celsius' }],
        [TIME_CALL.id, 'get_time', { city: 'Paris' }],
      ]);
      expect(completion.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 2 });
    });

    it.each([
      // [tool_choice, parallel_tool_calls, Anthropic tool_choice sent, tools the fake model calls]
      [undefined, undefined, undefined, ['get_weather', 'get_time']],
      ['auto', undefined, { type: 'auto' }, ['get_weather', 'get_time']],
      ['auto', false, { type: 'auto', disable_parallel_tool_use: true }, ['get_weather']],
      [undefined, false, { type: 'auto', disable_parallel_tool_use: true }, ['get_weather']],
      ['none', undefined, { type: 'none' }, []],
      ['none', false, { type: 'none' }, []],
      ['required', undefined, { type: 'any' }, ['get_weather', 'get_time']],
      ['required', false, { type: 'any', disable_parallel_tool_use: true }, ['get_weather']],
      [{ type: 'function', function: { name: 'get_time' } }, undefined, { type: 'tool', name: 'get_time' }, ['get_time']],
      [{ type: 'function', function: { name: 'get_time' } }, true, { type: 'tool', name: 'get_time', disable_parallel_tool_use: false }, ['get_time']],
    ])('maps tool_choice %j with parallel_tool_calls %j to %j', async (toolChoice, parallelToolCalls, sent, called) => {
      const { body } = await complete({
        tools: TOOLS,
        tool_choice: toolChoice,
        parallel_tool_calls: parallelToolCalls,
        messages: [user('weather in parallel')],
      });

      expect(sentBody().tool_choice).toEqual(sent);
      // tool_choice none still sends the tools, as Anthropic expects.
      expect(sentBody().tools).toEqual(ANTHROPIC_TOOLS);
      const calls = body.choices[0].message.tool_calls ?? [];
      expect(calls.map((call: any) => call.function.name)).toEqual(called);
      expect(body.choices[0].finish_reason).toBe(called.length > 0 ? 'tool_calls' : 'stop');
    });

    const toolTurn = [
      user('weather and time in parallel'),
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: WEATHER_CALL.id, type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: TIME_CALL.id, type: 'function', function: { name: 'get_time', arguments: '{"city":"Paris"}' } },
        ],
      },
      { role: 'tool', tool_call_id: WEATHER_CALL.id, content: '18 degrees' },
      { role: 'tool', tool_call_id: TIME_CALL.id, content: 'noon' },
    ];
    const anthropicToolTurn = [
      { role: 'user', content: [{ type: 'text', text: 'weather and time in parallel' }] },
      {
        role: 'assistant',
        content: [
          { type: 'tool_use', id: WEATHER_CALL.id, name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: TIME_CALL.id, name: 'get_time', input: { city: 'Paris' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: WEATHER_CALL.id, content: '18 degrees' },
          { type: 'tool_result', tool_use_id: TIME_CALL.id, content: 'noon' },
        ],
      },
    ];

    it('turns tool messages into one user message of tool_result blocks', async () => {
      const { body } = await complete({ tools: TOOLS, messages: toolTurn });

      expect(sentBody().messages).toEqual(anthropicToolTurn);
      expect(body.choices[0]).toMatchObject({
        finish_reason: 'stop',
        message: { content: `Tool ${WEATHER_CALL.id} said: 18 degrees | Tool ${TIME_CALL.id} said: noon` },
      });
    });

    it('adds a dummy tool when the history has tool calls but the request no tools', async () => {
      await complete({ messages: toolTurn });

      expect(sentBody().messages).toEqual(anthropicToolTurn);
      expect(sentBody().tools).toEqual([
        { name: 'dummy_tool', description: 'This is a dummy tool call', input_schema: { type: 'object', properties: {} }, type: 'custom' },
      ]);
    });

    it('rewrites tool call ids Anthropic would refuse, in tool_use and tool_result alike', async () => {
      const { status, body } = await complete({
        tools: TOOLS,
        messages: [
          user('weather'),
          { role: 'assistant', content: null, tool_calls: [{ id: 'functions.get_weather:0', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
          { role: 'tool', tool_call_id: 'functions.get_weather:0', content: '18 degrees' },
        ],
      });

      expect(status).toBe(200);
      expect(sentBody().messages.slice(1)).toEqual([
        { role: 'assistant', content: [{ type: 'tool_use', id: 'functions_get_weather_0', name: 'get_weather', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'functions_get_weather_0', content: '18 degrees' }] },
      ]);
      expect(body.choices[0].message.content).toBe('Tool functions_get_weather_0 said: 18 degrees');
    });

    it('rewrites tool names Anthropic would refuse and maps them back, avoiding collisions', async () => {
      const tools = [
        { type: 'function', function: { name: 'weather.get', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
        { type: 'function', function: { name: 'weather_get', parameters: { type: 'object', properties: { q: { type: 'string' } } } } },
      ];
      const plain = await complete({ tools, messages: [user('weather in parallel')] });
      const sent = sentBody();
      anthropic.reset();
      const streamed = await stream({ tools, messages: [user('weather in parallel')] });

      expect(sent.tools.map((tool: any) => tool.name)).toEqual(['weather_get_2', 'weather_get']);
      expect(plain.body.choices[0].message.tool_calls.map((call: any) => [call.id, call.function.name])).toEqual([
        ['toolu_010weather_get_2', 'weather.get'],
        ['toolu_011weather_get', 'weather_get'],
      ]);
      const names = deltas(streamed).flatMap((choice) => choice.delta.tool_calls ?? []).filter((call: any) => call.id);
      expect(names.map((call: any) => [call.id, call.function.name])).toEqual([
        ['toolu_010weather_get_2', 'weather.get'],
        ['toolu_011weather_get', 'weather_get'],
      ]);
    });

    it('fills an empty assistant or user content with a made-up text block (LiteLLM bug)', async () => {
      await complete({
        tools: TOOLS,
        messages: [
          user('weather'),
          { role: 'assistant', content: '', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
          { role: 'tool', tool_call_id: 'call_1', content: '18 degrees' },
        ],
      });
      const afterToolCall = sentBody();
      anthropic.reset();
      const { body } = await complete({ messages: [user('')] });

      // content "" (what many clients send beside tool_calls) differs from null: the model reads this text.
      const filler = { type: 'text', text: '[System: Empty message content sanitised to satisfy protocol]' };
      expect(afterToolCall.messages[1].content).toEqual([filler, { type: 'tool_use', id: 'call_1', name: 'get_weather', input: {} }]);
      expect(sentBody().messages).toEqual([{ role: 'user', content: [filler] }]);
      expect(body.usage.prompt_tokens).toBe(8);
    });

    it('refuses a tool call without an id with a 400 that quotes the whole conversation (LiteLLM bug)', async () => {
      const { status, body } = await complete({
        tools: TOOLS,
        messages: [
          user('secret question'),
          { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
          { role: 'tool', content: '18 degrees' },
        ],
      });

      expect(status).toBe(400);
      expect(body.error.message).toContain("AnthropicException - 'NoneType' object has no attribute 'startswith'");
      // The prompt comes back in the error message: a gateway must not log or forward LiteLLM's messages as is.
      expect(body.error.message).toContain("Received Messages=[{'role': 'user', 'content': 'secret question'}");
      expect(anthropic.received).toHaveLength(0);
    });

    it('refuses tool call arguments that are not JSON with a 400 before calling Anthropic', async () => {
      const { status, body } = await complete({
        tools: TOOLS,
        messages: [
          user('weather'),
          { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: 'not json' } }] },
          { role: 'tool', tool_call_id: 'call_1', content: '18 degrees' },
        ],
      });

      expect(status).toBe(400);
      expect(body.error.message).toContain("Failed to parse tool call arguments for tool 'get_weather'");
      expect(anthropic.received).toHaveLength(0);
    });

    it('answers 500 when Anthropic sends a tool_use without an id, with a Python traceback when streaming (LiteLLM bug)', async () => {
      const withoutId = { answer: (derived: any) => ({ ...derived, content: [{ type: 'tool_use', name: 'get_weather', input: { city: 'Paris' } }] }) };
      anthropic.respondNext(withoutId, withoutId);

      const plain = await complete({ tools: TOOLS, messages: [user('weather')] });
      const streamed = await stream({ tools: TOOLS, messages: [user('weather')] });

      expect(plain.status).toBe(500);
      expect(plain.body.error.message).toBe("litellm.APIConnectionError: 'id'");
      expect(streamed.status).toBe(500);
      const streamedError = JSON.parse(streamed.text).error;
      expect(streamedError.message).toMatch(/^litellm\.APIConnectionError: 'id'\nTraceback \(most recent call last\):/);
      expect(streamedError.message).toContain("KeyError: 'id'");
    });
  });

  describe('system prompts and images', () => {
    it('moves system and developer messages, wherever they are, into the top-level system', async () => {
      const { body } = await complete({
        messages: [
          { role: 'system', content: 'Be brief.' },
          user('hello'),
          { role: 'assistant', content: 'hi' },
          // Its place in the conversation is lost: Anthropic has one system prompt.
          { role: 'developer', content: 'Now French.' },
          user('again'),
        ],
      });

      expect(sentBody().system).toEqual([
        { type: 'text', text: 'Be brief.' },
        { type: 'text', text: 'Now French.' },
      ]);
      expect(sentBody().messages.map((message: any) => message.role)).toEqual(['user', 'assistant', 'user']);
      expect(body.choices[0].message.content).toBe('Echo: again | System: Be brief. Now French.');
    });

    it('sends a data: URI image as a base64 source', async () => {
      const { body } = await complete({
        messages: [
          user([
            { type: 'text', text: 'what is this' },
            { type: 'image_url', image_url: { url: `data:image/png;base64,${TINY_PNG_BASE64}` } },
          ]),
        ],
      });

      expect(sentBody().messages[0].content[1]).toEqual({
        type: 'image',
        source: { type: 'base64', media_type: 'image/png', data: TINY_PNG_BASE64 },
      });
      expect(body.choices[0].message.content).toBe('Echo: what is this | Saw 1 image');
    });

    it('passes an https image URL on for Anthropic to fetch, dropping detail', async () => {
      const { status } = await complete({
        messages: [user([{ type: 'image_url', image_url: { url: 'https://images.example/cat.png', detail: 'high' } }])],
      });

      expect(status).toBe(200);
      expect(sentBody().messages[0].content).toEqual([{ type: 'image', source: { type: 'url', url: 'https://images.example/cat.png' } }]);
    });

    it('downloads an http image URL itself, and refuses a loopback one with a 400', async () => {
      const { status, body } = await complete({
        messages: [user([{ type: 'image_url', image_url: { url: `${anthropic.url}/image.png` } }])],
      });

      expect(status).toBe(400);
      expect(body.error.message).toContain('Unable to fetch image from URL');
      expect(body.error.message).toContain('url=http://REDACTED:');
      // Neither the image (LiteLLM's SSRF check refused it) nor the Messages request reached the fake.
      expect(anthropic.received).toHaveLength(0);
    });
  });

  describe('structured output', () => {
    const weatherFormat = {
      type: 'json_schema',
      json_schema: {
        name: 'weather',
        strict: true,
        schema: {
          type: 'object',
          properties: { city: { type: 'string' }, temperature: { type: 'number' }, tags: { type: 'array', items: { type: 'string' }, minItems: 1 } },
          required: ['city', 'temperature', 'tags'],
          additionalProperties: false,
        },
      },
    };
    const weatherJson = '{"city":"Paris","temperature":1.5,"tags":["Paris"]}';

    it('sends json_schema as output_format with the beta header on a current model', async () => {
      const { body } = await complete({ response_format: weatherFormat, messages: [user('weather as json')] });

      const [request] = anthropic.messages();
      expect(request.headers['anthropic-beta']).toBe('structured-outputs-2025-11-13');
      expect(request.body.output_format).toEqual({
        type: 'json_schema',
        schema: {
          type: 'object',
          properties: {
            city: { type: 'string' },
            temperature: { type: 'number' },
            // Unsupported keywords become prose: the answer is no longer guaranteed to have an item.
            tags: { type: 'array', items: { type: 'string' }, description: 'Note: minimum number of items: 1.' },
          },
          required: ['city', 'temperature', 'tags'],
          additionalProperties: false,
        },
      });
      expect(request.body.tools).toBeUndefined();
      expect(body.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: weatherJson } });

      anthropic.reset();
      const streamed = await stream({ response_format: weatherFormat, messages: [user('weather as json')] });
      expect(deltas(streamed).map((choice) => choice.delta.content ?? '').join('')).toBe(weatherJson);
    });

    it('forces a json_tool_call tool on a model missing from the cost map, and turns its input into content', async () => {
      const { body } = await complete({ model: LEGACY_MODEL, response_format: weatherFormat, messages: [user('weather as json')] });

      expect(sentBody()).toEqual({
        model: 'claude-3-5-sonnet-20241022',
        messages: [{ role: 'user', content: [{ type: 'text', text: 'weather as json' }] }],
        tool_choice: { name: 'json_tool_call', type: 'tool' },
        tools: [{ name: 'json_tool_call', input_schema: weatherFormat.json_schema.schema }],
        max_tokens: 4096,
      });
      // stop, not tool_calls; and the JSON re-serialised by json.dumps, unlike the streamed bytes.
      expect(body.choices[0]).toMatchObject({
        finish_reason: 'stop',
        message: { content: '{"city": "Paris", "temperature": 1.5, "tags": ["Paris"]}' },
      });

      anthropic.reset();
      const streamed = await stream({ model: LEGACY_MODEL, response_format: weatherFormat, messages: [user('weather as json')] });
      expect(deltas(streamed).map((choice) => choice.delta.content ?? '').join('')).toBe(weatherJson);
      expect(deltas(streamed).some((choice) => choice.delta.tool_calls)).toBe(false);
      expect(deltas(streamed).at(-1)?.finish_reason).toBe('stop');
    });

    it('returns only the `values` property of a json_tool_call answer, unless streaming (LiteLLM bug)', async () => {
      const listFormat = {
        type: 'json_schema',
        json_schema: {
          name: 'list',
          schema: { type: 'object', properties: { values: { type: 'array', items: { type: 'integer' } }, unit: { type: 'string' } }, required: ['values', 'unit'] },
        },
      };

      const plain = await complete({ model: LEGACY_MODEL, response_format: listFormat, messages: [user('numbers')] });
      const streamed = await stream({ model: LEGACY_MODEL, response_format: listFormat, messages: [user('numbers')] });

      // AnthropicConfig._convert_tool_response_to_message unwraps a `values` key (LiteLLM issue #6741):
      // the content no longer matches the caller's schema.
      expect(plain.body.choices[0].message.content).toBe('[42]');
      expect(deltas(streamed).map((choice) => choice.delta.content ?? '').join('')).toBe('{"values":[42],"unit":"Paris"}');
    });

    it('makes user tools uncallable when json_schema and tools meet on the json_tool_call path (LiteLLM bug)', async () => {
      const cityFormat = { type: 'json_schema', json_schema: { name: 'city', schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };

      const legacy = await complete({ model: LEGACY_MODEL, tools: TOOLS, response_format: cityFormat, messages: [user('weather')] });
      const legacySent = sentBody();
      anthropic.reset();
      const current = await complete({ tools: TOOLS, response_format: cityFormat, messages: [user('weather')] });

      expect(legacySent.tool_choice).toEqual({ name: 'json_tool_call', type: 'tool' });
      expect(legacySent.tools.map((tool: any) => tool.name)).toEqual(['json_tool_call', 'get_weather', 'get_time']);
      expect(legacy.body.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: '{"city": "Paris"}' } });
      // output_format leaves the choice to the model.
      expect(sentBody().tool_choice).toBeUndefined();
      expect(sentBody().output_format.schema.additionalProperties).toBe(false);
      expect(current.body.choices[0].finish_reason).toBe('tool_calls');
    });

    it.each([MODEL, LEGACY_MODEL])('sends nothing for json_object on %s: JSON is not enforced (LiteLLM gap)', async (model) => {
      const { body } = await complete({ model, response_format: { type: 'json_object' }, messages: [user('weather as json')] });

      expect(Object.keys(sentBody()).sort()).toEqual(['max_tokens', 'messages', 'model']);
      expect(anthropic.messages()[0].headers['anthropic-beta']).toBeUndefined();
      expect(body.choices[0].message.content).toBe('Echo: weather as json');
    });
  });

  describe('parameters', () => {
    it('maps stop, temperature, top_p, top_k, user and max_tokens; drops the rest without a word', async () => {
      const { body } = await complete({
        messages: [user('one two three four five six')],
        stop: ['four'],
        temperature: 0.2,
        top_p: 0.9,
        top_k: 5,
        seed: 7,
        presence_penalty: 0.5,
        frequency_penalty: 0.5,
        logit_bias: { '50256': -100 },
        logprobs: true,
        top_logprobs: 2,
        n: 2,
        user: 'user-123',
        max_tokens: 50,
      });

      expect(sentBody()).toEqual({
        model: 'claude-haiku-4-5-20251001',
        messages: [{ role: 'user', content: [{ type: 'text', text: 'one two three four five six' }] }],
        stop_sequences: ['four'],
        // Both: Anthropic's newer models refuse temperature together with top_p.
        temperature: 0.2,
        top_p: 0.9,
        top_k: 5,
        metadata: { user_id: 'user-123' },
        max_tokens: 50,
      });
      // n: 2 answers one choice; logprobs: true answers none.
      expect(body.choices).toHaveLength(1);
      expect(body.choices[0].logprobs).toBeUndefined();
      expect(body.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: 'Echo: one two three ' } });
    });

    it('drops a whitespace stop and an e-mail user, and maps max_completion_tokens and max_tokens to length', async () => {
      const plain = await complete({ messages: [user('one two three four')], stop: '\n', user: 'someone@example.com', max_completion_tokens: 3 });
      const sent = sentBody();
      anthropic.reset();
      const streamed = await stream({ messages: [user('one two three four')], max_tokens: 3 });

      expect(sent).toEqual({
        model: 'claude-haiku-4-5-20251001',
        messages: [{ role: 'user', content: [{ type: 'text', text: 'one two three four' }] }],
        max_tokens: 3,
      });
      expect(plain.body.choices[0]).toMatchObject({ finish_reason: 'length', message: { content: 'Echo: one two' } });
      expect(deltas(streamed).at(-1)?.finish_reason).toBe('length');
    });

    it('maps a refusal to content_filter, and reports the placeholder output token of message_start (LiteLLM bug)', async () => {
      const plain = await complete({ messages: [user('please refuse this')] });
      const streamed = await stream({ messages: [user('please refuse this')], stream_options: { include_usage: true } });

      expect(plain.body.choices[0]).toMatchObject({ finish_reason: 'content_filter', message: { content: null } });
      expect(plain.body.usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 0 });
      expect(deltas(streamed)[0]).toEqual({ index: 0, delta: {}, finish_reason: 'content_filter' });
      // message_delta says output_tokens 0; the stream reports message_start's 1.
      expect(streamed.chunks.at(-1).usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 1 });
    });

    it('counts cache tokens into prompt_tokens, as OpenAI does, and prices them', async () => {
      const cached = { answer: (derived: any) => ({ ...derived, usage: { input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 100, cache_read_input_tokens: 1000 } }) };
      anthropic.respondNext(cached, cached);

      const plain = await complete({ messages: [user('hello')] });
      const streamed = await stream({ messages: [user('hello')], stream_options: { include_usage: true } });

      const usage = {
        prompt_tokens: 1110,
        completion_tokens: 5,
        total_tokens: 1115,
        prompt_tokens_details: { cache_write_tokens: 100, cached_tokens: 1000, text_tokens: 10, cache_creation_tokens: 100 },
        cache_creation_input_tokens: 100,
        cache_read_input_tokens: 1000,
      };
      expect(plain.body.usage).toMatchObject(usage);
      expect(streamed.chunks.at(-1).usage).toMatchObject(usage);
      // 10 × 1e-6 + 100 × 1.25e-6 + 1000 × 1e-7 + 5 × 5e-6
      expect(Number(plain.headers.get('x-litellm-response-cost'))).toBeCloseTo(2.6e-4, 12);
      expect(streamed.chunks.at(-1).usage.cost).toBeCloseTo(2.6e-4, 12);
    });

    it('sends no cost header for a model missing from the cost map', async () => {
      const { status, headers } = await complete({ model: LEGACY_MODEL, messages: [user('hello')] });

      expect(status).toBe(200);
      expect(headers.get('x-litellm-response-cost')).toBeNull();
    });
  });

  describe('errors', () => {
    it.each([
      // [Anthropic status, LiteLLM status, LiteLLM exception, OpenAI error type]
      [400, 400, 'BadRequestError', 'invalid_request_error'],
      [401, 401, 'AuthenticationError', 'authentication_error'],
      [403, 403, 'PermissionDeniedError', 'permission_error'],
      [404, 404, 'NotFoundError', 'invalid_request_error'],
      [413, 400, 'BadRequestError', 'invalid_request_error'],
      [429, 429, 'RateLimitError', 'throttling_error'],
      [500, 500, 'InternalServerError', 'internal_server_error'],
      [503, 503, 'ServiceUnavailableError', 'internal_server_error'],
      // overloaded_error: a retryable "try later" that arrives as a plain 500.
      [529, 500, 'InternalServerError', 'internal_server_error'],
    ])('maps Anthropic %i to %i %s', async (upstreamStatus, status, exception, type) => {
      anthropic.respondNext({ status: upstreamStatus, headers: { 'retry-after': '9' } });

      const response = await complete({ messages: [user('hello')] });

      expect(response.status).toBe(status);
      expect(response.body.error).toMatchObject({ type, code: String(status) });
      expect(response.body.error.message).toMatch(new RegExp(`^litellm\\.${exception}: Anthropic(Exception|Error) - `));
      // Anthropic's own error type survives only inside the message text.
      expect(response.body.error.message).toContain(`"type":"error","error":{"type":"`);
      // Provider headers come back prefixed: Retry-After as llm_provider-retry-after, never as retry-after.
      expect(response.headers.get('llm_provider-retry-after')).toBe('9');
      expect(response.headers.get('retry-after')).toBeNull();
      expect(anthropic.messages()).toHaveLength(1);
    });

    it('raises an openai SDK RateLimitError for a 429', async () => {
      anthropic.respondNext({ status: 429, headers: { 'retry-after': '9' } });

      const error = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hello' }] }).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(RateLimitError);
      expect((error as RateLimitError).headers.get('llm_provider-retry-after')).toBe('9');
    });

    it("recognises Anthropic's prompt-too-long 400 as a context window error", async () => {
      anthropic.respondNext({
        status: 400,
        body: { type: 'error', error: { type: 'invalid_request_error', message: 'prompt is too long: 250000 tokens > 200000 maximum' } },
      });

      const { status, body } = await complete({ messages: [user('hello')] });

      expect(status).toBe(400);
      expect(body.error.message).toMatch(/^litellm\.ContextWindowExceededError: /);
    });

    it('answers a stream that fails before its first delta with an HTTP error', async () => {
      anthropic.respondNext({ status: 529 }, { streamErrorAfterDeltas: 0 });

      const refused = await stream({ messages: [user('hello')] });
      const failed = await stream({ messages: [user('hello')] });

      expect(refused.status).toBe(500);
      expect(JSON.parse(refused.text).error.message).toContain('overloaded_error');
      expect(failed.status).toBe(500);
      expect(JSON.parse(failed.text).error).toEqual({
        message: 'litellm.InternalServerError: AnthropicError - Overloaded',
        type: 'internal_server_error',
        param: null,
        code: '500',
      });
    });

    it.each([
      ['an error event', { streamErrorAfterDeltas: 2 }, { message: 'litellm.InternalServerError: AnthropicError - Overloaded', type: 'internal_server_error', param: null, code: '500' }],
      [
        'a cut connection',
        { cutAfterDeltas: 2 },
        {
          message:
            "litellm.APIConnectionError: AnthropicException - Response payload is not completed: <TransferEncodingError: 400, message='Not enough data to satisfy transfer length header.'>",
          type: null,
          param: null,
          code: '500',
        },
      ],
    ])('ends a 200 stream broken by %s with an error chunk, no usage and no [DONE]', async (_, script, error) => {
      // The gap lets each event leave the fake before the next step, as on a real network.
      anthropic.respondNext({ ...script, eventGapMs: 20 });

      const answer = await stream({ messages: [user('hello there')], stream_options: { include_usage: true } });

      expect(answer.status).toBe(200);
      expect(answer.chunks.map((chunk) => chunk.choices?.[0]?.delta.content ?? chunk)).toEqual(['Echo: ', 'hello ', { error }]);
      expect(answer.done).toBe(false);
    });

    it("ends a stalled stream with an error chunk after the request's timeout", async () => {
      anthropic.respondNext({ stallAfterDeltas: 1 });

      const answer = await stream({ messages: [user('hello there')], timeout: 2 });

      expect(answer.chunks.map((chunk) => chunk.choices?.[0]?.delta.content ?? chunk)).toEqual([
        'Echo: ',
        { error: { message: 'litellm.APIConnectionError: AnthropicException - Timeout on reading data from socket', type: null, param: null, code: '500' } },
      ]);
      expect(answer.done).toBe(false);
      expect(await upstreamClosed()).toBe(true);
    });

    it('closes the connection to Anthropic when the client leaves a stream', async () => {
      anthropic.respondNext({ stallAfterDeltas: 1 });
      const aborter = new AbortController();
      const response = await fetch(`${litellm.url}/v1/chat/completions`, {
        method: 'POST',
        signal: aborter.signal,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${litellm.masterKey}` },
        body: JSON.stringify({ model: MODEL, stream: true, messages: [user('hello there')] }),
      });
      await response.body!.getReader().read();

      aborter.abort();

      expect(await upstreamClosed()).toBe(true);
    });
  });
});
