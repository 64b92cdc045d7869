import { Writable } from 'node:stream';
import { FakeUpstream } from './support/fake-upstream';
import { postJson, readJson, RunningGateway, startGateway } from './support/gateway';

/** Logs (captured from the real logger) and metrics, from real requests through the app. */
describe('logs and metrics', () => {
  const upstream = new FakeUpstream();
  const CANARY_LITELLM_KEY = 'sk-canary-litellm-key-5f1e9a';
  const CANARY_CALLER_KEY = 'canary-caller-key-7c2d41';
  const CANARY_PROMPT = 'canary prompt text 3b8e77';
  let gateway: RunningGateway;
  let logs = '';
  const capture = new Writable({
    write(chunk, _encoding, done) {
      logs += chunk.toString();
      done();
    },
  });
  const logLines = () => logs.split('\n').filter(Boolean).map((line) => JSON.parse(line));

  beforeAll(async () => {
    await upstream.start();
    gateway = await startGateway(
      { LITELLM_URL: upstream.url, LITELLM_API_KEY: CANARY_LITELLM_KEY, LOG_LEVEL: 'debug' },
      { logDestination: capture },
    );
  });

  afterAll(async () => {
    await gateway?.close();
    await upstream.stop();
  });

  beforeEach(() => upstream.reset());

  const withCanaries = { messages: [{ role: 'user', content: CANARY_PROMPT }] };
  const callerHeaders = { authorization: `Bearer ${CANARY_CALLER_KEY}` };

  it('writes one JSON line per request with method, route, status, duration, model and request id', async () => {
    const response = await postJson(`${gateway.url}/v1/chat`, withCanaries, { ...callerHeaders, 'x-request-id': 'trace-me-1' });
    expect(response.status).toBe(200);
    await response.text();
    await new Promise((resolve) => setTimeout(resolve, 50));

    const line = logLines().find((entry) => entry.requestId === 'trace-me-1' && entry.msg === 'request completed');
    expect(line).toMatchObject({
      level: 'info',
      service: 'llm-gateway',
      method: 'POST',
      route: '/v1/chat',
      statusCode: 200,
      durationMs: expect.any(Number),
      model: 'gpt-4o',
    });
  });

  it('never logs keys or prompt text, whatever happens', async () => {
    // A success, a stream, an upstream refusal quoting our key, a validation error and an unknown route.
    await (await postJson(`${gateway.url}/v1/chat`, withCanaries, callerHeaders)).text();
    await (await postJson(`${gateway.url}/v1/chat`, { ...withCanaries, stream: true }, callerHeaders)).text();
    upstream.respondNext({ status: 401, body: { error: { message: `Incorrect API key provided: ${CANARY_LITELLM_KEY}` } } });
    await (await postJson(`${gateway.url}/v1/chat`, withCanaries, callerHeaders)).text();
    await (await postJson(`${gateway.url}/v1/chat`, { messages: [{ role: 'robot', content: CANARY_PROMPT }] }, callerHeaders)).text();
    await (await fetch(`${gateway.url}/v1/nowhere?q=${encodeURIComponent(CANARY_PROMPT)}`, { headers: callerHeaders })).text();
    await new Promise((resolve) => setTimeout(resolve, 50));

    expect(logLines().length).toBeGreaterThan(4);
    for (const canary of [CANARY_LITELLM_KEY, CANARY_CALLER_KEY, CANARY_PROMPT, '5f1e9a', '3b8e77']) {
      expect(logs).not.toContain(canary);
    }
  });

  it('logs the organization id on organization routes', async () => {
    const created = await readJson(await postJson(`${gateway.url}/v1/organizations`, { name: 'Logged' }));
    await (await postJson(`${gateway.url}/v1/organizations/${created.id}/chat`, withCanaries)).text();
    await new Promise((resolve) => setTimeout(resolve, 50));

    expect(logLines()).toContainEqual(
      expect.objectContaining({ route: '/v1/organizations/:id/chat', organizationId: created.id, model: 'gpt-4o', statusCode: 200 }),
    );
  });

  it('exposes Prometheus metrics: requests by route and status, upstream calls by model and outcome, fallbacks, in-flight, process', async () => {
    const organization = await readJson(await postJson(`${gateway.url}/v1/organizations`, { name: 'Metered' }));
    upstream.respondNext({ status: 404, body: { error: { message: 'model gone' } } });
    await (await postJson(`${gateway.url}/v1/organizations/${organization.id}/chat`, withCanaries)).text();
    upstream.respondNext({ status: 429 });
    await (await postJson(`${gateway.url}/v1/chat`, withCanaries)).text();

    const response = await fetch(`${gateway.url}/metrics`);
    const text = await response.text();

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    expect(text).toMatch(/http_request_duration_seconds_count\{method="POST",route="\/v1\/chat",status_code="200"\} \d+/);
    expect(text).toMatch(/http_request_duration_seconds_count\{method="POST",route="\/v1\/chat",status_code="429"\} 1/);
    expect(text).toMatch(/llm_upstream_requests_total\{model="gpt-4o",operation="chat",outcome="success"\} \d+/);
    expect(text).toMatch(/llm_upstream_requests_total\{model="gpt-4o",operation="chat",outcome="UPSTREAM_RATE_LIMITED"\} 1/);
    expect(text).toMatch(/llm_upstream_requests_total\{model="claude-3-5-sonnet",operation="chat",outcome="success"\} 1/);
    expect(text).toMatch(/llm_fallbacks_total\{reason="MODEL_NOT_FOUND"\} 1/);
    expect(text).toMatch(/http_requests_in_flight \d+/);
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
    expect(text).not.toContain(CANARY_PROMPT);
  });

  it('can switch metrics off', async () => {
    const quiet = await startGateway({ METRICS_ENABLED: 'false' });
    try {
      const response = await fetch(`${quiet.url}/metrics`);
      expect(response.status).toBe(404);
      expect((await readJson(response)).code).toBe('NOT_FOUND');
    } finally {
      await quiet.close();
      delete process.env.METRICS_ENABLED;
    }
  });
});
