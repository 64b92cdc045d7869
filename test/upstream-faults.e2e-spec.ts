import type { ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { FakeUpstream } from './support/fake-upstream';
import { parseEventStream, postJson, readJson, RunningGateway, startGateway } from './support/gateway';

/**
 * A misbehaving upstream, as a trusted gateway must expect one: 200s that are not answers, streams that are
 * not event streams or that stop half-way, bodies that never come, model names that would break a header.
 * Every answer below is what the gateway must say instead of passing the fault on as a success.
 */
describe('upstream faults (gateway → misbehaving fake upstream)', () => {
  const upstream = new FakeUpstream();
  let gateway: RunningGateway;
  const hello = { messages: [{ role: 'user', content: 'hello there' }] };
  const chat = (body: object = hello) => postJson(`${gateway.url}/v1/chat`, body);
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) => ({
    handler: (_request: unknown, response: ServerResponse) => {
      response.writeHead(status, { 'content-type': 'application/json', ...headers });
      response.end(typeof body === 'string' ? body : JSON.stringify(body));
    },
  });
  const sse = (...events: string[]) => ({
    handler: (_request: unknown, response: ServerResponse) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.end(events.map((event) => `data: ${event}\n\n`).join(''));
    },
  });
  const chunk = (delta: object, finishReason: string | null = null) =>
    JSON.stringify({ id: 'c', model: 'gpt-4o', choices: [{ index: 0, delta, finish_reason: finishReason }] });

  beforeAll(async () => {
    await upstream.start();
    gateway = await startGateway({
      NODE_ENV: 'test',
      LITELLM_URL: upstream.url,
      LITELLM_API_KEY: 'sk-gateway-test-key',
      LLM_TIMEOUT_MS: '1000',
      LLM_STREAM_IDLE_TIMEOUT_MS: '500',
      STREAM_WRITE_TIMEOUT_MS: '3000',
      MODELS_CACHE_TTL_MS: '60000',
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await upstream.stop();
  });

  beforeEach(() => upstream.reset());

  async function expectError(response: Response, status: number, code: string): Promise<any> {
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toContain('application/json');
    const body = await readJson(response);
    expect(body).toMatchObject({ statusCode: status, code, requestId: response.headers.get('x-request-id') });
    return body;
  }

  describe('plain chat answers that are not answers', () => {
    it.each([
      ['no choices', { id: 'c', model: 'gpt-4o', choices: [] }],
      ['a choice without a message', { id: 'c', model: 'gpt-4o', choices: [{ index: 0, finish_reason: 'stop' }] }],
      ['content that is not text', { id: 'c', model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: 42 } }] }],
      ['usage without counts', { id: 'c', model: 'gpt-4o', choices: [{ index: 0, message: { content: 'x' } }], usage: { prompt_tokens: 'many' } }],
      ['not JSON at all', '<html>Bad Gateway</html>'],
    ])('answers 502 UPSTREAM_INVALID_RESPONSE for a 200 with %s', async (_label, body) => {
      upstream.respondNext(json(200, body));
      await expectError(await chat(), 502, 'UPSTREAM_INVALID_RESPONSE');
    });

    it('answers 504 within LLM_TIMEOUT_MS when the headers come but the body never does', async () => {
      upstream.respondNext({
        handler: (_request, response) => {
          response.writeHead(200, { 'content-type': 'application/json' });
          response.write('{"id":"c",'); // and nothing more, ever
        },
      });

      const started = Date.now();
      await expectError(await chat(), 504, 'UPSTREAM_TIMEOUT');
      expect(Date.now() - started).toBeLessThan(1_900);
      await waitFor(() => upstream.received[0]?.closedByClient === true);
    });
  });

  describe('streams', () => {
    it.each([
      ['an HTML page', 'text/html', '<html><body>upstream error</body></html>'],
      ['a JSON completion', 'application/json', JSON.stringify({ choices: [{ message: { content: 'not streamed' } }] })],
    ])('answers a streamed call that gets %s with an HTTP 502 before any byte', async (_label, contentType, body) => {
      upstream.respondNext({
        handler: (_request, response) => {
          response.writeHead(200, { 'content-type': contentType });
          response.end(body);
        },
      });

      await expectError(await chat({ ...hello, stream: true }), 502, 'UPSTREAM_INVALID_RESPONSE');
    });

    it('ends a stream that stops without a finish reason and without [DONE] with UPSTREAM_STREAM_TRUNCATED, never [DONE]', async () => {
      upstream.respondNext(sse(chunk({ role: 'assistant', content: 'Half an ' }), chunk({ content: 'answer' })));

      const response = await chat({ ...hello, stream: true });

      expect(response.status).toBe(200);
      const events = parseEventStream(await response.text());
      expect(events.slice(0, -1).map((event) => JSON.parse(event.data).content).join('')).toBe('Half an answer');
      expect(events[events.length - 1].event).toBe('error');
      expect(JSON.parse(events[events.length - 1].data)).toMatchObject({ statusCode: 502, code: 'UPSTREAM_STREAM_TRUNCATED' });
      expect(events.some((event) => event.data === '[DONE]')).toBe(false);
    });

    it('ends a stream whose connection breaks half-way with UPSTREAM_STREAM_TRUNCATED', async () => {
      upstream.respondNext({
        handler: (_request, response) => {
          response.writeHead(200, { 'content-type': 'text/event-stream' });
          response.write(`data: ${chunk({ content: 'cut ' })}\n\n`);
          setTimeout(() => response.socket?.destroy(), 50);
        },
      });

      const events = parseEventStream(await (await chat({ ...hello, stream: true })).text());

      expect(events[events.length - 1].event).toBe('error');
      expect(JSON.parse(events[events.length - 1].data).code).toBe('UPSTREAM_STREAM_TRUNCATED');
    });

    it('takes a finish reason without [DONE] as a complete answer', async () => {
      upstream.respondNext(sse(chunk({ content: 'whole' }), chunk({}, 'length')));

      const events = parseEventStream(await (await chat({ ...hello, stream: true })).text());

      expect(events.map((event) => event.data).slice(-1)).toEqual(['[DONE]']);
      expect(JSON.parse(events[events.length - 2].data)).toMatchObject({ model: 'gpt-4o', finishReason: 'length' });
    });

    it('answers 502 UPSTREAM_INVALID_RESPONSE, before any byte, for a first event that is not JSON', async () => {
      upstream.respondNext(sse('this is not json'));
      await expectError(await chat({ ...hello, stream: true }), 502, 'UPSTREAM_INVALID_RESPONSE');
    });
  });

  describe('embeddings answers that are not answers', () => {
    const embed = (input: string | string[]) => postJson(`${gateway.url}/v1/embeddings`, { input });
    const vectors = (...embeddings: unknown[]) => ({
      object: 'list',
      model: 'text-embedding-3-small',
      data: embeddings.map((embedding, index) => ({ object: 'embedding', index, embedding })),
    });

    it.each([
      ['no vector', 'one', { object: 'list', data: [{ object: 'embedding', index: 0 }] }],
      ['no list', 'one', { object: 'list' }],
      ['fewer vectors than inputs', ['one', 'two'], vectors([0.1, 0.2])],
      ['more vectors than inputs', 'one', vectors([0.1], [0.2])],
      ['an empty vector', 'one', vectors([])],
      ['vectors of different lengths', ['one', 'two'], vectors([0.1, 0.2], [0.3])],
      ['a vector of strings', 'one', vectors(['0.1', '0.2'])],
    ])('answers 502 UPSTREAM_INVALID_RESPONSE for %s', async (_label, input, body) => {
      upstream.respondNext(json(200, body));
      await expectError(await embed(input), 502, 'UPSTREAM_INVALID_RESPONSE');
    });
  });

  describe('model names', () => {
    it.each(['gpt\r\n4o', 'gpt-4o\nx-injected: yes', 'gpt\u00004o', 'gpt-4o-ünicode', 'gpt 4o', '\u4e2d\u6587'])(
      'refuses %j in a request with 400, sending nothing upstream',
      async (model) => {
        const response = await chat({ ...hello, model });

        const body = await expectError(response, 400, 'VALIDATION_FAILED');
        expect(body.message).toContain('model must be a model name');
        expect(upstream.received).toHaveLength(0);
      },
    );

    it("never builds a header from the model name the provider reports: it goes in upstreamModel, escaped", async () => {
      const reported = 'gpt-4o\r\nx-injected: yes\u0000\u4e2d';
      const writtenRecords = (metrics: string) => Number(/usage_records_written_total (\d+)/.exec(metrics)?.[1] ?? 0);
      const writtenBefore = writtenRecords(await (await fetch(`${gateway.url}/metrics`)).text());
      upstream.respondNext(json(200, { id: 'c', model: reported, choices: [{ index: 0, message: { content: 'hi' }, finish_reason: 'stop' }] }));

      const response = await chat();

      expect(response.status).toBe(200);
      expect(response.headers.get('x-llm-model')).toBe('gpt-4o');
      expect(response.headers.get('x-injected')).toBeNull();
      expect(response.headers.get('x-request-id')).toBeTruthy();
      expect(await readJson(response)).toMatchObject({ model: 'gpt-4o', upstreamModel: reported });
      // And the usage ledger stores it (a NUL would make the database refuse the record).
      await waitForAsync(async () => writtenRecords(await (await fetch(`${gateway.url}/metrics`)).text()) > writtenBefore, 5_000);
      expect(await (await fetch(`${gateway.url}/metrics`)).text()).toMatch(/usage_records_dropped_total 0\n/);
    });

    it('reports the model asked for in `model` and x-llm-model, and what the provider said in `upstreamModel`, streamed too', async () => {
      const dated = JSON.stringify({ id: 'c', model: 'gpt-4o-2024-08-06', choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: 'stop' }] });
      upstream.respondNext(sse(dated, '[DONE]'));

      const response = await chat({ ...hello, stream: true });

      expect(response.headers.get('x-llm-model')).toBe('gpt-4o');
      const events = parseEventStream(await response.text());
      expect(JSON.parse(events[events.length - 2].data)).toMatchObject({ model: 'gpt-4o', upstreamModel: 'gpt-4o-2024-08-06' });
    });

    it('labels metrics with served model names only: an invented name is counted as `other`', async () => {
      upstream.respondNext(json(400, { error: { message: 'Invalid model name passed in model=caller-invented-model-7f3a' } }));
      expect((await chat({ ...hello, model: 'caller-invented-model-7f3a' })).status).toBe(400);
      await chat(); // the model list is read in the background by now

      const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
      expect(metrics).not.toContain('caller-invented-model-7f3a');
      expect(metrics).toMatch(/llm_upstream_requests_total\{model="other",operation="chat",outcome="MODEL_NOT_FOUND"\} 1/);
      expect(metrics).toMatch(/llm_upstream_requests_total\{model="gpt-4o",operation="chat",outcome="success"\}/);
    });
  });

  describe('a caller that reads slowly', () => {
    const CHUNKS = 1_000;
    const CHUNK_SIZE = 65_536;
    /**
     * A stream of many large chunks, sent as fast as the connection takes them: the caller is the slow side.
     * 64 MB, well beyond what the kernel buffers of a loopback connection hold (here up to 32 MB received and
     * 4 MB sent), so the gateway must wait.
     */
    const bulkStream = (chunks: number, size: number) => ({
      handler: (_request: unknown, response: ServerResponse) => {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.flushHeaders();
        const piece = `data: ${chunk({ content: 'x'.repeat(size) })}\n\n`;
        let sent = 0;
        // As fast as the gateway takes it, as a real upstream sends: writing all 64 MB in one go held this
        // process (the gateway's too) long enough, on a busy machine, for the stream's start to time out.
        const write = () => {
          while (sent < chunks && !response.destroyed) {
            sent += 1;
            if (!response.write(piece)) return void response.once('drain', write);
          }
          if (!response.destroyed) response.end(`data: ${chunk({}, 'stop')}\n\ndata: [DONE]\n\n`);
        };
        write();
      },
    });

    /**
     * A caller that reads nothing until the test says so, then all of it, however it ends. A raw socket, paused:
     * Node's HTTP client keeps reading from the socket into memory while its response is paused, so only a paused
     * socket leaves the bytes in the kernel and pushes back on the gateway, as a stalled caller does.
     */
    function pausedStream(): Promise<{ resume: () => Promise<string> }> {
      const { port } = new URL(gateway.url);
      return new Promise((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => {
          const body = JSON.stringify({ ...hello, stream: true });
          socket.write(`POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
          socket.pause();
          resolve({
            resume: () =>
              new Promise((done) => {
                const parts: Buffer[] = [];
                socket.on('data', (part: Buffer) => parts.push(part));
                socket.on('error', () => undefined); // a stream cut short ends with a reset
                socket.on('close', () => done(dechunk(Buffer.concat(parts).toString('utf8'))));
                socket.resume();
              }),
          });
        });
        socket.on('error', reject);
      });
    }

    it('is not an upstream timeout: a pause longer than LLM_STREAM_IDLE_TIMEOUT_MS still gets the whole stream', async () => {
      upstream.respondNext(bulkStream(CHUNKS, CHUNK_SIZE));

      const stream = await pausedStream();
      await new Promise((resolve) => setTimeout(resolve, 1_500)); // idle timeout: 500 ms; write timeout: 3 s
      const events = parseEventStream(await stream.resume());

      expect(events.filter((event) => event.event === 'error')).toEqual([]);
      expect(events[events.length - 1].data).toBe('[DONE]');
      expect(events.slice(0, -2).map((event) => JSON.parse(event.data).content.length)).toEqual(Array(CHUNKS).fill(CHUNK_SIZE));
    }, 60_000);

    it('is cut off after STREAM_WRITE_TIMEOUT_MS without reading, and the upstream call is ended', async () => {
      upstream.respondNext(bulkStream(CHUNKS, CHUNK_SIZE));

      const stream = await pausedStream();
      const started = Date.now();
      // The gateway ends its call to the upstream with this outcome when it cuts the caller off.
      const cut = /llm_upstream_requests_total\{model="[^"]+",operation="chat_stream",outcome="STREAM_WRITE_TIMEOUT"\} 1/;
      await waitForAsync(async () => cut.test(await (await fetch(`${gateway.url}/metrics`)).text()), 20_000);
      const cutAfter = Date.now() - started;
      const events = parseEventStream(await stream.resume());

      expect(cutAfter).toBeGreaterThanOrEqual(2_700); // STREAM_WRITE_TIMEOUT_MS is 3 s here
      expect(cutAfter).toBeLessThan(15_000);
      // 64 MB cannot have reached a caller that read nothing: what it finally reads ends short, without [DONE].
      expect(events.length).toBeLessThan(CHUNKS);
      expect(events.some((event) => event.data === '[DONE]')).toBe(false);
    }, 60_000);
  });
});

/** The body of a raw HTTP/1.1 answer in chunked encoding, as far as it came. */
function dechunk(raw: string): string {
  let rest = raw.slice(raw.indexOf('\r\n\r\n') + 4);
  let body = '';
  for (;;) {
    const lineEnd = rest.indexOf('\r\n');
    if (lineEnd === -1) return body;
    const size = parseInt(rest.slice(0, lineEnd), 16);
    if (!size) return body;
    body += rest.slice(lineEnd + 2, lineEnd + 2 + size);
    rest = rest.slice(lineEnd + 2 + size + 2);
  }
}

async function waitForAsync(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
