import { FakeUpstream, fakeChatReply, fakeEmbedding } from './support/fake-upstream';
import { parseEventStream, postJson, readJson, RunningGateway, startGateway } from './support/gateway';

/**
 * The gateway against a fake OpenAI-compatible upstream standing where LiteLLM would: every status,
 * delay and stream shape is chosen by the test. The contract suite repeats the essentials through the
 * real LiteLLM.
 */
describe('LLM routes (gateway → fake upstream)', () => {
  const upstream = new FakeUpstream();
  let gateway: RunningGateway;
  const hello = { messages: [{ role: 'user', content: 'hello there' }] };

  beforeAll(async () => {
    await upstream.start();
    gateway = await startGateway({
      NODE_ENV: 'test',
      LITELLM_URL: upstream.url,
      LITELLM_API_KEY: 'sk-gateway-test-key',
      LLM_TIMEOUT_MS: '1000',
      LLM_STREAM_IDLE_TIMEOUT_MS: '500',
      BODY_LIMIT_BYTES: '65536',
      MODELS_CACHE_TTL_MS: '60000',
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await upstream.stop();
  });

  beforeEach(() => upstream.reset());

  const chat = (body: unknown, headers?: Record<string, string>) => postJson(`${gateway.url}/v1/chat`, body, headers);

  describe('POST /v1/chat', () => {
    it('answers with content, model and usage, sending LiteLLM only the validated fields', async () => {
      const response = await chat({ ...hello, model: 'gpt-4o', temperature: 0.2, maxTokens: 50 });

      expect(response.status).toBe(200);
      expect(await readJson(response)).toEqual({
        content: fakeChatReply(hello.messages),
        model: 'gpt-4o',
        upstreamModel: 'gpt-4o',
        usage: { promptTokens: 2, completionTokens: 3, totalTokens: 5 },
        finishReason: 'stop',
      });
      expect(response.headers.get('x-llm-model')).toBe('gpt-4o');
      const [sent] = upstream.requestsTo('/chat/completions');
      expect(sent.headers.authorization).toBe('Bearer sk-gateway-test-key');
      expect(sent.body).toEqual({
        model: 'gpt-4o',
        messages: hello.messages,
        temperature: 0.2,
        max_tokens: 50,
      });
    });

    it('treats null in an optional field as absent, and never sends it upstream', async () => {
      const response = await chat({ ...hello, model: null, temperature: null, maxTokens: null, stream: null });

      expect(response.status).toBe(200);
      const [sent] = upstream.requestsTo('/chat/completions');
      expect(sent.body).toEqual({ model: 'gpt-4o', messages: hello.messages });
    });

    it('uses DEFAULT_CHAT_MODEL when the body names none', async () => {
      await chat(hello);
      expect(upstream.requestsTo('/chat/completions')[0].body.model).toBe('gpt-4o');
    });

    it.each([
      [{}, 'messages must be an array'],
      [{ messages: [] }, 'messages must contain at least 1 elements'],
      [{ messages: [{ role: 'robot', content: 'x' }] }, 'messages.0.role must be one of the following values'],
      [{ messages: [{ role: 'user', content: 42 }] }, 'messages.0.content must be a string'],
      [{ ...hello, temperature: 3 }, 'temperature must not be greater than 2'],
      [{ ...hello, temperature: '1' }, 'temperature must be a number'],
      [{ ...hello, maxTokens: 0 }, 'maxTokens must not be less than 1'],
      [{ ...hello, maxTokens: 2.5 }, 'maxTokens must be an integer number'],
      [{ ...hello, stream: 'yes' }, 'stream must be a boolean value'],
      [{ ...hello, api_base: 'http://evil.example' }, 'property api_base should not exist'],
      [{ messages: [{ role: 'user', content: 'x', name: 'n' }] }, 'messages.0.name: property name should not exist'],
    ])('rejects %j with 400 naming the field, sending nothing upstream', async (body, expected) => {
      const response = await chat(body);

      expect(response.status).toBe(400);
      const error = await readJson(response);
      expect(error).toMatchObject({ statusCode: 400, error: 'Bad Request', code: 'VALIDATION_FAILED' });
      expect(error.message).toContain(expected);
      expect(error.requestId).toBe(response.headers.get('x-request-id'));
      expect(upstream.received).toHaveLength(0);
    });

    it('rejects malformed JSON and non-JSON bodies without a 500', async () => {
      const malformed = await fetch(`${gateway.url}/v1/chat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"messages": [',
      });
      expect(malformed.status).toBe(400);
      expect((await readJson(malformed)).code).toBe('BAD_REQUEST');

      const text = await fetch(`${gateway.url}/v1/chat`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' });
      expect(text.status).toBe(415);
      expect(upstream.received).toHaveLength(0);
    });

    it('answers 413 for a body over BODY_LIMIT_BYTES', async () => {
      const response = await chat({ messages: [{ role: 'user', content: 'x'.repeat(70_000) }] });

      expect(response.status).toBe(413);
      expect(await readJson(response)).toMatchObject({ statusCode: 413, code: 'PAYLOAD_TOO_LARGE' });
      expect(upstream.received).toHaveLength(0);
    });

    it('echoes a caller-given x-request-id, and makes one up otherwise', async () => {
      const given = await chat(hello, { 'x-request-id': 'caller-trace-123' });
      expect(given.headers.get('x-request-id')).toBe('caller-trace-123');

      const made = await chat(hello, { 'x-request-id': 'not acceptable\u00e9' });
      expect(made.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    });
  });

  describe('upstream errors, mapped in one place', () => {
    it.each([
      [429, { 'retry-after': '7' }, 429, 'UPSTREAM_RATE_LIMITED'],
      [401, {}, 502, 'UPSTREAM_AUTH_FAILED'],
      [403, {}, 502, 'UPSTREAM_AUTH_FAILED'],
      [500, {}, 502, 'UPSTREAM_ERROR'],
      [503, {}, 502, 'UPSTREAM_ERROR'],
      [408, {}, 504, 'UPSTREAM_TIMEOUT'],
    ])('LiteLLM %i → gateway %s', async (upstreamStatus, headers, status, code) => {
      upstream.respondNext({ status: upstreamStatus, headers, body: { error: { message: 'nope', code: String(upstreamStatus) } } });

      const response = await chat(hello);

      expect(response.status).toBe(status);
      const body = await readJson(response);
      expect(body).toMatchObject({ statusCode: status, code });
      expect(body.requestId).toBe(response.headers.get('x-request-id'));
      expect(response.headers.get('retry-after')).toBe(upstreamStatus === 429 ? '7' : null);
      expect(upstream.requestsTo('/chat/completions')).toHaveLength(1); // no retries in this layer
    });

    it("maps LiteLLM's 400 for an unknown model to MODEL_NOT_FOUND, with LiteLLM's explanation", async () => {
      upstream.respondNext({
        status: 400,
        body: { error: { message: 'Invalid model name passed in model=gpt-9. Call `/v1/models`', code: '400' } },
      });

      const response = await chat({ ...hello, model: 'gpt-9' });

      expect(response.status).toBe(400);
      expect(await readJson(response)).toMatchObject({ code: 'MODEL_NOT_FOUND', message: expect.stringContaining('model=gpt-9') });
    });

    it('passes on other 400s as UPSTREAM_BAD_REQUEST, with any key in the text redacted', async () => {
      upstream.respondNext({
        status: 400,
        body: { error: { message: 'ContextWindowExceededError; key used: sk-live-abcdef123456', code: '400' } },
      });

      const response = await chat(hello);
      const body = await readJson(response);

      expect(response.status).toBe(400);
      expect(body.code).toBe('UPSTREAM_BAD_REQUEST');
      expect(body.message).toContain('ContextWindowExceededError');
      expect(JSON.stringify(body)).not.toContain('abcdef123456');
    });

    it('answers 504 when LiteLLM is slower than LLM_TIMEOUT_MS', async () => {
      upstream.respondNext({ delayMs: 1_500 });

      const response = await chat(hello);

      expect(response.status).toBe(504);
      expect((await readJson(response)).code).toBe('UPSTREAM_TIMEOUT');
    });

    it('answers 503 when LiteLLM is unreachable', async () => {
      const unreachable = await startGateway({ LITELLM_URL: 'http://127.0.0.1:9' });
      try {
        const response = await postJson(`${unreachable.url}/v1/chat`, hello);
        expect(response.status).toBe(503);
        expect((await readJson(response)).code).toBe('UPSTREAM_UNAVAILABLE');
      } finally {
        await unreachable.close();
        process.env.LITELLM_URL = upstream.url;
      }
    });
  });

  describe('POST /v1/chat with stream: true', () => {
    it('streams content deltas, then model and usage, then [DONE]; the content equals the plain answer', async () => {
      const plain = await readJson(await chat(hello));

      const response = await chat({ ...hello, stream: true });

      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toContain('text/event-stream');
      expect(response.headers.get('x-request-id')).toBeTruthy();
      const events = parseEventStream(await response.text());
      const deltas = events.slice(0, -2).map((event) => JSON.parse(event.data));
      expect(deltas.length).toBeGreaterThan(1);
      expect(deltas.every((delta) => Object.keys(delta).join() === 'content')).toBe(true);
      expect(deltas.map((delta) => delta.content).join('')).toBe(plain.content);
      expect(JSON.parse(events[events.length - 2].data)).toEqual({ model: 'gpt-4o', upstreamModel: 'gpt-4o', usage: plain.usage, finishReason: 'stop' });
      expect(events[events.length - 1].data).toBe('[DONE]');

      const sent = upstream.requestsTo('/chat/completions')[1].body;
      expect(sent.stream).toBe(true);
      expect(sent.stream_options).toEqual({ include_usage: true });
    });

    it('turns an upstream error before the first byte into an ordinary HTTP error', async () => {
      upstream.respondNext({ status: 429, headers: { 'retry-after': '3' }, body: { error: { message: 'slow down' } } });

      const response = await chat({ ...hello, stream: true });

      expect(response.status).toBe(429);
      expect(response.headers.get('content-type')).toContain('application/json');
      expect(response.headers.get('retry-after')).toBe('3');
      expect((await readJson(response)).code).toBe('UPSTREAM_RATE_LIMITED');
    });

    it('ends with an error event when the upstream fails mid-stream, never a silent success', async () => {
      upstream.respondNext({ streamErrorAfterChunks: 1 });

      const response = await chat({ ...hello, stream: true });

      expect(response.status).toBe(200);
      const events = parseEventStream(await response.text());
      expect(JSON.parse(events[0].data)).toHaveProperty('content');
      const last = events[events.length - 1];
      expect(last.event).toBe('error');
      expect(JSON.parse(last.data)).toMatchObject({ statusCode: 502, code: 'UPSTREAM_ERROR', requestId: expect.any(String) });
      expect(events.some((event) => event.data === '[DONE]')).toBe(false);
    });

    it('ends a stream that goes silent for LLM_STREAM_IDLE_TIMEOUT_MS with a timeout error event', async () => {
      upstream.respondNext({ stallAfterChunks: 1 });

      const response = await chat({ ...hello, stream: true });

      const events = parseEventStream(await response.text());
      expect(JSON.parse(events[0].data)).toHaveProperty('content');
      const last = events[events.length - 1];
      expect(last.event).toBe('error');
      expect(JSON.parse(last.data)).toMatchObject({ statusCode: 504, code: 'UPSTREAM_TIMEOUT' });
      await waitFor(() => upstream.requestsTo('/chat/completions')[0]?.closedByClient === true);
    });

    it('aborts the upstream request when the caller disconnects', async () => {
      upstream.respondNext({ stallAfterChunks: 1 });

      const response = await chat({ ...hello, stream: true });
      const reader = response.body!.getReader();
      await reader.read(); // the first delta arrived: the stream is flowing
      await reader.cancel(); // the caller hangs up

      await waitFor(() => upstream.requestsTo('/chat/completions')[0]?.closedByClient === true);
    });
  });

  describe('POST /v1/embeddings', () => {
    it('embeds one text as float vectors, newlines replaced by spaces', async () => {
      const response = await postJson(`${gateway.url}/v1/embeddings`, { input: 'first line\nsecond line' });

      expect(response.status).toBe(200);
      const body = await readJson(response);
      expect(body).toEqual({
        embedding: fakeEmbedding('first line second line'),
        model: 'text-embedding-3-small',
        upstreamModel: 'text-embedding-3-small',
        dimensions: 1536,
        usage: { promptTokens: 4, completionTokens: 0, totalTokens: 4 },
      });
      const [sent] = upstream.requestsTo('/embeddings');
      expect(sent.body).toEqual({
        model: 'text-embedding-3-small',
        input: ['first line second line'],
        encoding_format: 'float',
      });
    });

    it('passes dimensions on, for the models that shorten their vectors', async () => {
      const response = await postJson(`${gateway.url}/v1/embeddings`, { input: 'short', dimensions: 8 });

      expect(response.status).toBe(200);
      expect(await readJson(response)).toMatchObject({ embedding: fakeEmbedding('short', 8), dimensions: 8 });
      expect(upstream.requestsTo('/embeddings')[0].body).toMatchObject({ dimensions: 8 });
    });

    it('embeds a batch in order', async () => {
      const input = ['alpha', 'beta', 'gamma'];
      const response = await postJson(`${gateway.url}/v1/embeddings`, { input, model: 'text-embedding-3-small' });

      expect(response.status).toBe(200);
      const body = await readJson(response);
      expect(body.embeddings).toEqual(input.map((text) => fakeEmbedding(text)));
      expect(body.dimensions).toBe(1536);
    });

    it.each([[{}], [{ input: '' }], [{ input: [] }], [{ input: ['ok', 3] }], [{ input: Array(257).fill('x') }], [{ input: 'x', dimensions: 0 }], [{ input: 'x', dimensions: 8.5 }]])(
      'rejects %j with 400, sending nothing upstream',
      async (body) => {
        const response = await postJson(`${gateway.url}/v1/embeddings`, body);
        expect(response.status).toBe(400);
        expect((await readJson(response)).code).toBe('VALIDATION_FAILED');
        expect(upstream.received).toHaveLength(0);
      },
    );
  });

  describe('GET /v1/models', () => {
    it("lists LiteLLM's models and caches them", async () => {
      const first = await fetch(`${gateway.url}/v1/models`);
      const second = await fetch(`${gateway.url}/v1/models`);

      expect(await readJson(first)).toEqual({ models: ['claude-3-5-sonnet', 'gpt-4o', 'text-embedding-3-small'] });
      expect(second.status).toBe(200);
      // The list may be cached already (metric labels read it too); the two calls share at most one request.
      expect(upstream.requestsTo('/models').length).toBeLessThanOrEqual(1);
    });
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((done) => setTimeout(done, 20));
  }
}
