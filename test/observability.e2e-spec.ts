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

  // Before any second app: Nest's static Logger writes through the app created last.
  /** The raw lines of one request id (as written: a duplicated field would show here, not in a parsed object). */
  const rawLinesOf = (requestId: string) => logs.split('\n').filter((line) => line.includes(`"${requestId}"`));
  const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

  it("puts the request id on a warning written while serving a request (here: readiness failing on LiteLLM's refusal)", async () => {
    upstream.respondNext({ path: '/models', status: 401, body: { error: { message: 'Authentication Error' } } });
    const response = await fetch(`${gateway.url}/health/ready`, { headers: { 'x-request-id': 'probe-context-1' } });
    expect(response.status).toBe(503);
    await settle();

    const readiness = logLines().find((entry) => entry.context === 'Readiness');
    expect(readiness).toMatchObject({
      level: 'warn',
      requestId: 'probe-context-1',
      msg: "Not ready: litellm: LiteLLM refused the gateway's key (401): check LITELLM_API_KEY",
    });
    // Lines written outside any request carry none.
    expect(logLines().filter((entry) => entry.context === 'Config').every((entry) => entry.requestId === undefined)).toBe(true);
  });

  it('writes the request id under one name, once per line, on the fallback warning too', async () => {
    const organization = await readJson(await postJson(`${gateway.url}/v1/organizations`, { name: 'Falls back' }));
    upstream.respondNext({ status: 404, body: { error: { message: 'model gone' } } });
    const response = await postJson(`${gateway.url}/v1/organizations/${organization.id}/chat`, withCanaries, { 'x-request-id': 'fallback-1' });
    expect(response.status).toBe(200);
    await response.text();
    await settle();

    const lines = rawLinesOf('fallback-1');
    const parsed = lines.map((line) => JSON.parse(line));
    expect(parsed).toContainEqual(expect.objectContaining({ level: 'warn', reason: 'MODEL_NOT_FOUND', msg: expect.stringContaining('trying the fallback model') }));
    expect(parsed).toContainEqual(expect.objectContaining({ msg: 'request completed', statusCode: 200 }));
    for (const line of lines) expect(line.match(/"requestId":"fallback-1"/g)).toHaveLength(1);
    expect(logs).not.toContain('"reqId"');
  });

  it('logs a failed request with its error code: a 5xx at warn, a 4xx at info', async () => {
    upstream.respondNext({ status: 500 });
    await (await postJson(`${gateway.url}/v1/chat`, withCanaries, { 'x-request-id': 'fails-upstream' })).text();
    await (await postJson(`${gateway.url}/v1/chat`, { messages: [] }, { 'x-request-id': 'fails-validation' })).text();
    await (await postJson(`${gateway.url}/openai/v1/chat/completions`, { messages: 'nope' }, { 'x-request-id': 'fails-openai' })).text();
    await (await postJson(`${gateway.url}/v1/chat`, withCanaries, { 'x-request-id': 'succeeds' })).text();
    await settle();

    const line = (requestId: string) => logLines().find((entry) => entry.requestId === requestId && entry.msg === 'request completed');
    expect(line('fails-upstream')).toMatchObject({ level: 'warn', statusCode: 502, code: 'UPSTREAM_ERROR', route: '/v1/chat' });
    expect(line('fails-validation')).toMatchObject({ level: 'info', statusCode: 400, code: 'VALIDATION_FAILED' });
    expect(line('fails-openai')).toMatchObject({ level: 'info', statusCode: 400, code: 'VALIDATION_FAILED', route: '/openai/v1/chat/completions' });
    expect(line('succeeds')).toMatchObject({ level: 'info', statusCode: 200 });
    expect(line('succeeds')).not.toHaveProperty('code');
  });

  it('logs Swagger UI, its assets and the OpenAPI document at debug, like probes', async () => {
    for (const [path, id] of [['/docs', 'docs-page'], ['/docs/swagger-ui.css', 'docs-asset'], ['/docs-json', 'docs-json'], ['/health/live', 'probe']]) {
      const response = await fetch(`${gateway.url}${path}`, { headers: { 'x-request-id': id } });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
    }
    await settle();
    for (const id of ['docs-page', 'docs-asset', 'docs-json', 'probe']) {
      expect(logLines().filter((entry) => entry.requestId === id)).toEqual([expect.objectContaining({ level: 'debug', msg: 'request completed', statusCode: 200 })]);
    }
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
