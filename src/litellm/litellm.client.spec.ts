import { ConfigService } from '@nestjs/config';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { GatewayError } from '../common/errors/gateway-error';
import { Environment, validateEnvironment } from '../config/environment';
import { MetricsService } from '../metrics/metrics.service';
import { LiteLLMClient } from './litellm.client';
import { ChatStreamPart } from './litellm.types';
import { LlmClientProvider } from './llm-client.provider';
import { ModelCatalogService } from './model-catalog.service';
import { NotSentError, sendGate } from './send-gate';

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

const chunk = (delta: object, finishReason: string | null = null) =>
  `data: ${JSON.stringify({ id: 'c', model: 'gpt-4o-2024', choices: [{ index: 0, delta, finish_reason: finishReason }] })}\n\n`;
const usage = `data: ${JSON.stringify({ id: 'c', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } })}\n\n`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** LiteLLMClient's stream reading, against a local server playing LiteLLM: every read, timer and ending. */
describe('LiteLLMClient.streamChat', () => {
  let server: Server;
  let handler: Handler;
  let provider: LlmClientProvider;
  let client: LiteLLMClient;
  const request = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'hi' }] };

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => handler(req, res));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const config = new ConfigService<Environment, true>(
      validateEnvironment({
        LITELLM_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        LITELLM_API_KEY: 'sk-test',
        LLM_TIMEOUT_MS: '1000',
        LLM_STREAM_IDLE_TIMEOUT_MS: '200',
      }),
    );
    provider = new LlmClientProvider(config);
    client = new LiteLLMClient(provider, new ModelCatalogService(provider, config), new MetricsService(), config);
  });

  afterAll(async () => {
    await provider.onApplicationShutdown();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const sse = (write: (response: ServerResponse) => void): Handler => (_request, response) => {
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    write(response);
  };

  async function readAll(pauseMs = 0): Promise<{ parts: ChatStreamPart[]; error?: GatewayError; metering: object }> {
    const stream = await client.streamChat(request);
    const parts: ChatStreamPart[] = [];
    try {
      for await (const read of stream.reads()) {
        parts.push(...read);
        if (pauseMs) await sleep(pauseMs);
      }
    } catch (error) {
      return { parts, error: error as GatewayError, metering: stream.metering };
    }
    return { parts, metering: stream.metering };
  }

  it('reads parts, then the finish reason, the model and the usage', async () => {
    handler = sse((response) => response.end(chunk({ role: 'assistant', content: '' }) + chunk({ content: 'Hel' }) + chunk({ content: 'lo' }) + chunk({}, 'stop') + usage + 'data: [DONE]\n\n'));

    const { parts, error, metering } = await readAll();

    expect(error).toBeUndefined();
    expect(parts).toEqual([{ content: 'Hel' }, { content: 'lo' }, { finishReason: 'stop' }]);
    expect(metering).toMatchObject({ upstreamModel: 'gpt-4o-2024', usage: { promptTokens: 3, completionTokens: 2, totalTokens: 5 }, finishReason: 'stop' });
  });

  it('ends at [DONE], without waiting for the upstream to end its body', async () => {
    handler = sse((response) => response.write(chunk({ content: 'done' }, 'stop') + 'data: [DONE]\n\n')); // and the body never ends

    const started = Date.now();
    const { parts, error } = await readAll();

    expect(error).toBeUndefined();
    expect(parts).toEqual([{ content: 'done', finishReason: 'stop' }]);
    expect(Date.now() - started).toBeLessThan(150); // the idle timeout is 200 ms
  });

  it('hands over the parts that came before an error in the same read, then the error', async () => {
    handler = sse((response) => response.end(chunk({ content: 'partial' }) + `data: ${JSON.stringify({ error: { message: 'overloaded', code: '503' } })}\n\n`));

    const { parts, error } = await readAll();

    expect(parts).toEqual([{ content: 'partial' }]);
    expect(error).toMatchObject({ code: 'UPSTREAM_ERROR' });
  });

  it('times out a silent upstream, but not a consumer that takes its time between reads', async () => {
    handler = sse((response) => {
      response.write(chunk({ content: 'a' }));
      setTimeout(() => response.end(chunk({ content: 'b' }, 'stop') + 'data: [DONE]\n\n'), 20);
    });
    // The consumer pauses 400 ms after each read, twice the idle timeout: the upstream was never silent that long.
    expect((await readAll(400)).error).toBeUndefined();

    handler = sse((response) => response.write(chunk({ content: 'a' }))); // then silence
    const { parts, error } = await readAll();
    expect(parts).toEqual([{ content: 'a' }]);
    expect(error).toMatchObject({ code: 'UPSTREAM_TIMEOUT', message: expect.stringContaining('200 ms') });
  });

  it.each([
    ['ends without a finish reason or [DONE]', (response: ServerResponse) => response.end(chunk({ content: 'half' }))],
    ['breaks off', (response: ServerResponse) => {
      response.write(chunk({ content: 'half' }));
      setTimeout(() => response.socket?.destroy(), 20);
    }],
  ])('calls a stream that %s truncated', async (_label, write) => {
    handler = sse(write);

    const { parts, error } = await readAll();

    expect(parts).toEqual([{ content: 'half' }]);
    expect(error).toMatchObject({ code: 'UPSTREAM_STREAM_TRUNCATED' });
  });

  it('keeps an answer whole when the upstream goes silent after its finish reason (only the usage is lost)', async () => {
    handler = sse((response) => response.write(chunk({ content: 'whole' }, 'length')));

    const { parts, error, metering } = await readAll();

    expect(error).toBeUndefined();
    expect(parts).toEqual([{ content: 'whole', finishReason: 'length' }]);
    expect(metering).toMatchObject({ finishReason: 'length' });
  });

  it.each([
    ['text/html', '<html>oops</html>'],
    ['application/json', '{"choices":[]}'],
  ])('refuses a streamed answer of %s before any read', async (contentType, body) => {
    handler = (_request, response) => {
      response.writeHead(200, { 'content-type': contentType });
      response.end(body);
    };

    await expect(client.streamChat(request)).rejects.toMatchObject({ code: 'UPSTREAM_INVALID_RESPONSE' });
  });

  it('refuses an event-stream line too long to be an answer, as an invalid answer', async () => {
    handler = sse((response) => {
      const piece = Buffer.alloc(1024 * 1024, 'x');
      response.write('data: ');
      for (let index = 0; index < 17; index += 1) response.write(piece);
    });

    const { error } = await readAll();

    expect(error).toMatchObject({ code: 'UPSTREAM_INVALID_RESPONSE', message: expect.stringContaining('longer than') });
  });
});

/** Calls made with a gate (send-gate.ts), through the real SDK client to a local server that counts what arrives. */
describe('LiteLLMClient: gated calls', () => {
  let server: Server;
  let received = 0;
  let provider: LlmClientProvider;
  let metrics: MetricsService;
  let client: LiteLLMClient;
  const request = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'hi' }] };
  const completion = { id: 'c', object: 'chat.completion', model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }] };

  beforeAll(async () => {
    server = createServer((req, res) => {
      // Calls only: the model catalog reads the model list on its own.
      if (req.method === 'POST') received += 1;
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(completion));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const config = new ConfigService<Environment, true>(
      validateEnvironment({
        LITELLM_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        LITELLM_API_KEY: 'sk-test',
        // The SDK retries a failed fetch: a failed gate must not be taken for one.
        LLM_MAX_RETRIES: '2',
        LLM_TIMEOUT_MS: '200',
      }),
    );
    provider = new LlmClientProvider(config);
    metrics = new MetricsService();
    client = new LiteLLMClient(provider, new ModelCatalogService(provider, config), metrics, config);
  });

  beforeEach(() => {
    received = 0;
  });

  afterAll(async () => {
    await provider.onApplicationShutdown();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('sends the call only when its gate opens', async () => {
    let open!: () => void;
    const call = client.chat(request, undefined, sendGate(new Promise<void>((resolve) => (open = resolve))));

    await sleep(50);
    expect(received).toBe(0);
    open();
    await expect(call).resolves.toMatchObject({ content: 'ok' });
    expect(received).toBe(1);
  });

  it('gives LiteLLM its whole LLM_TIMEOUT_MS from when the gate opens, not from when the call was built', async () => {
    const call = client.chat(request, undefined, sendGate(sleep(400)));

    await expect(call).resolves.toMatchObject({ content: 'ok' });
    expect(received).toBe(1);
  });

  it.each(['chat', 'streamChat', 'embed'] as const)('%s: a failed gate sends nothing, is not retried, and comes back as it is', async (method) => {
    const refusal = new GatewayError('RATE_LIMITED', 'over the limit');
    const upstreamCalls = async () => (await metrics.registry.getSingleMetricAsString('llm_upstream_requests_total')).split('\n').filter((line) => !line.startsWith('#')).length;
    const countedBefore = await upstreamCalls();
    const call =
      method === 'embed'
        ? client.embed({ model: 'text-embedding-3-small', input: ['a'] }, undefined, sendGate(Promise.reject(refusal)))
        : client[method](request, undefined, sendGate(Promise.reject(refusal)));

    const error = await (call as Promise<unknown>).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(NotSentError);
    expect((error as NotSentError).reason).toBe(refusal);
    await sleep(50);
    expect(received).toBe(0);
    expect(await upstreamCalls()).toBe(countedBefore);
  });
});
