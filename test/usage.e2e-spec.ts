import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { createTestDatabase, TestDatabase, testDatabaseAddress } from './support/database';
import { FakeUpstream } from './support/fake-upstream';
import { parseEventStream, postJson, readJson, RunningGateway, startGateway, temporaryDataDir } from './support/gateway';
import { startGatewayProcess } from './support/gateway-process';
import { RunningLiteLLM, startLiteLLM } from './support/litellm';
import { TcpProxy } from './support/tcp-proxy';

const ADMIN_KEY = 'usage-test-admin-key-0123456789';
const CALLER_KEY = 'usage-test-caller-key-012345678';
const admin = { authorization: `Bearer ${ADMIN_KEY}` };
const caller = { authorization: `Bearer ${CALLER_KEY}` };
const hello = { messages: [{ role: 'user', content: 'count my tokens please' }] };

interface Row {
  call_id: string;
  attempt: number;
  request_id: string;
  organization_id: string | null;
  route: string;
  operation: string;
  model: string;
  upstream_model: string | null;
  fallback_reason: string | null;
  outcome: string;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  tokens_estimated: boolean;
  cost_usd: string | null;
  time_to_first_byte_ms: number | null;
  duration_ms: number;
}

/** Polls the database until `rows` satisfies `done`: records reach it within USAGE_FLUSH_INTERVAL_MS. */
async function waitForRows(database: TestDatabase, where: string, done: (rows: Row[]) => boolean, timeoutMs = 5_000): Promise<Row[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await database.query<Row>(`SELECT * FROM usage_records WHERE ${where} ORDER BY call_id, attempt`);
    if (done(rows)) return rows;
    if (Date.now() > deadline) throw new Error(`usage records not as expected after ${timeoutMs} ms: ${JSON.stringify(rows).slice(0, 2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('usage ledger (real LiteLLM, real PostgreSQL)', () => {
  const provider = new FakeUpstream();
  let litellm: RunningLiteLLM;
  let gateway: RunningGateway;
  let database: TestDatabase;
  const flushIntervalMs = 200;

  beforeAll(async () => {
    await provider.start();
    database = await createTestDatabase();
    litellm = await startLiteLLM(join(__dirname, 'support', 'litellm.test-config.yaml'), {
      FAKE_UPSTREAM_API_BASE: `${provider.url}/v1`,
      FAKE_PROVIDER_API_KEY: 'sk-fake-provider-key',
    });
    gateway = await startGateway({
      NODE_ENV: 'test',
      LITELLM_URL: litellm.url,
      LITELLM_API_KEY: litellm.masterKey,
      DATABASE_URL: database.url,
      GATEWAY_API_KEYS: CALLER_KEY,
      GATEWAY_ADMIN_API_KEYS: ADMIN_KEY,
      USAGE_FLUSH_INTERVAL_MS: String(flushIntervalMs),
    });
  }, 180_000);

  afterAll(async () => {
    await gateway?.close();
    await litellm?.stop();
    await database?.drop();
    await provider.stop();
    delete process.env.DATABASE_URL;
  });

  beforeEach(() => provider.reset());

  const call = (path: string, body: object, id: string) => postJson(`${gateway.url}${path}`, body, { ...caller, 'x-request-id': id });
  const get = (path: string, headers: Record<string, string> = admin) => fetch(`${gateway.url}${path}`, { headers });
  const createOrganization = async (body: object) => readJson(await postJson(`${gateway.url}/v1/organizations`, body, admin));

  it('records a plain chat with the tokens and the cost LiteLLM reported, within the flush interval', async () => {
    const response = await call('/v1/chat', { ...hello, model: 'gpt-4o' }, 'usage-plain-1');
    const answer = await readJson(response);
    const answeredAt = Date.now();

    const [row] = await waitForRows(database, `request_id = 'usage-plain-1'`, (rows) => rows.length === 1, flushIntervalMs + 1_000);

    expect(Date.now() - answeredAt).toBeLessThan(flushIntervalMs + 1_000);
    expect(row).toMatchObject({
      attempt: 1,
      organization_id: null,
      route: '/v1/chat',
      operation: 'chat',
      model: 'gpt-4o',
      upstream_model: 'gpt-4o',
      outcome: 'ok',
      prompt_tokens: answer.usage.promptTokens,
      completion_tokens: answer.usage.completionTokens,
      total_tokens: answer.usage.totalTokens,
      tokens_estimated: false,
    });
    // gpt-4o is in LiteLLM's price list: it sends x-litellm-response-cost.
    expect(Number(row.cost_usd)).toBeGreaterThan(0);
    expect(row.time_to_first_byte_ms).toBeGreaterThanOrEqual(0);
    expect(row.duration_ms).toBeGreaterThanOrEqual(row.time_to_first_byte_ms!);
  });

  it("records a stream with the usage of LiteLLM's final usage chunk", async () => {
    const response = await call('/v1/chat', { ...hello, stream: true }, 'usage-stream-1');
    const events = parseEventStream(await response.text());
    const closing = JSON.parse(events[events.length - 2].data);

    const [row] = await waitForRows(database, `request_id = 'usage-stream-1'`, (rows) => rows.length === 1);

    expect(closing.usage.totalTokens).toBeGreaterThan(0);
    expect(row).toMatchObject({
      operation: 'chat_stream',
      outcome: 'ok',
      prompt_tokens: closing.usage.promptTokens,
      completion_tokens: closing.usage.completionTokens,
      total_tokens: closing.usage.totalTokens,
      tokens_estimated: false,
    });
  });

  it('records embeddings with their prompt tokens', async () => {
    const answer = await readJson(await call('/v1/embeddings', { input: ['one two three', 'four five'] }, 'usage-embed-1'));

    const [row] = await waitForRows(database, `request_id = 'usage-embed-1'`, (rows) => rows.length === 1);

    expect(row).toMatchObject({ operation: 'embeddings', model: 'text-embedding-3-small', outcome: 'ok', prompt_tokens: answer.usage.promptTokens });
    expect(row.prompt_tokens).toBe(5);
  });

  it("records an organization's calls, both attempts of a fallback under one call id, and the API's totals are the records' sums", async () => {
    const organization = await createOrganization({ name: 'Metered' });
    // As after a model is removed from LiteLLM's config: stored directly, past the API's check.
    const [stale] = await database.query<{ id: string }>(
      `INSERT INTO organizations (name, llm_model, llm_fallback_model) VALUES ('Stale', 'gpt-retired', 'claude-3-5-sonnet') RETURNING id`,
    );
    const direct = await readJson(await call(`/v1/organizations/${organization.id}/chat`, hello, 'usage-org-1'));
    const fellBack = await readJson(await call(`/v1/organizations/${stale.id}/chat`, hello, 'usage-org-2'));
    expect(fellBack).toMatchObject({ model: 'claude-3-5-sonnet', fallbackReason: 'MODEL_NOT_FOUND' });

    const rows = await waitForRows(database, `request_id IN ('usage-org-1', 'usage-org-2')`, (found) => found.length === 3);
    const [first, second] = rows.filter((row) => row.request_id === 'usage-org-2').sort((a, b) => a.attempt - b.attempt);
    expect(first.call_id).toBe(second.call_id);
    expect(first).toMatchObject({ attempt: 1, organization_id: stale.id, model: 'gpt-retired', outcome: 'MODEL_NOT_FOUND', total_tokens: 0 });
    expect(second).toMatchObject({
      attempt: 2,
      model: 'claude-3-5-sonnet',
      fallback_reason: 'MODEL_NOT_FOUND',
      outcome: 'ok',
      total_tokens: fellBack.usage.totalTokens,
    });
    expect(rows.find((row) => row.request_id === 'usage-org-1')).toMatchObject({ organization_id: organization.id, total_tokens: direct.usage.totalTokens });

    const summary = await readJson(await get(`/v1/organizations/${stale.id}/usage?groupBy=model`));
    expect(summary).toMatchObject({
      organizationId: stale.id,
      totals: { requests: 1, promptTokens: second.prompt_tokens, completionTokens: second.completion_tokens, totalTokens: second.total_tokens, errors: 0 },
    });
    // By model, the call counts under both models it tried; it ended well, so it is no error in either. LiteLLM has
    // no price for this test's claude-3-5-sonnet (an openai/ route to the fake): no cost, rather than a cost of 0.
    expect(summary.groups).toEqual([
      { key: 'claude-3-5-sonnet', requests: 1, promptTokens: second.prompt_tokens, completionTokens: second.completion_tokens, totalTokens: second.total_tokens, costUsd: null, errors: 0 },
      { key: 'gpt-retired', requests: 1, promptTokens: 0, completionTokens: 0, totalTokens: 0, costUsd: null, errors: 0 },
    ]);
  });

  it('counts a call that ended in an error among the errors, and its attempt among the records', async () => {
    const organization = await createOrganization({ name: 'Unlucky', llmFallbackModel: null });
    await call(`/v1/organizations/${organization.id}/chat`, hello, 'usage-errors-1');
    provider.respondNext({ status: 500, body: { error: { message: 'provider exploded' } } });
    expect((await call(`/v1/organizations/${organization.id}/chat`, hello, 'usage-errors-2')).status).toBe(502);
    await waitForRows(database, `request_id IN ('usage-errors-1', 'usage-errors-2')`, (rows) => rows.length === 2);

    const summary = await readJson(await get(`/v1/organizations/${organization.id}/usage?groupBy=day`));

    expect(summary.totals).toMatchObject({ requests: 2, errors: 1 });
    expect(summary.groups).toEqual([expect.objectContaining({ key: new Date().toISOString().slice(0, 10), requests: 2, errors: 1 })]);
  });

  it('records a stream the caller left after a few chunks as aborted_by_caller, its completion tokens counted', async () => {
    provider.respondNext({ stallAfterChunks: 2 }); // two content chunks, then the provider holds the stream open
    await new Promise<void>((resolve, reject) => {
      const { port } = new URL(gateway.url);
      const body = JSON.stringify({ messages: [{ role: 'user', content: 'tell me a long story about tokens' }], stream: true });
      const req = httpRequest(
        { host: '127.0.0.1', port, path: '/v1/chat', method: 'POST', headers: { ...caller, 'content-type': 'application/json', 'x-request-id': 'usage-abort-1' } },
        (res) => {
          let received = '';
          res.on('data', (chunk: Buffer) => {
            received += chunk.toString();
            if ((received.match(/"content"/g) ?? []).length >= 2) {
              req.destroy(); // the caller leaves mid-stream
              resolve();
            }
          });
        },
      );
      req.on('error', () => undefined);
      req.end(body);
      // unref: a timer left running after the test would hold the Jest worker at its exit.
      setTimeout(() => reject(new Error('the stream did not start')), 10_000).unref();
    });

    const [row] = await waitForRows(database, `request_id = 'usage-abort-1'`, (rows) => rows.length === 1);

    expect(row).toMatchObject({ operation: 'chat_stream', outcome: 'aborted_by_caller', tokens_estimated: true });
    expect(row.completion_tokens).toBeGreaterThan(0);
    expect(row.prompt_tokens).toBeGreaterThan(0);
  });

  it('answers across organizations, and pages through the raw records, newest first', async () => {
    const all = await readJson(await get('/v1/usage?groupBy=organization'));
    const records = await database.query<{ count: string }>('SELECT count(DISTINCT call_id) AS count FROM usage_records');
    expect(all.totals.requests).toBe(Number(records[0].count));
    expect(all.groups.map((group: { key: string }) => group.key)).toContain('none');

    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await readJson(await get(`/v1/usage/records?limit=2${cursor ? `&cursor=${cursor}` : ''}`));
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((item: { callId: string; attempt: number; startedAt: string }) => `${item.startedAt}|${item.callId}|${item.attempt}`));
      cursor = page.nextCursor;
    } while (cursor);
    const total = await database.query<{ count: string }>('SELECT count(*) AS count FROM usage_records');
    expect(seen).toHaveLength(Number(total[0].count));
    expect([...seen].sort().reverse()).toEqual(seen);
  });

  it.each([
    ['/v1/organizations/00000000-0000-4000-8000-000000000000/usage', 404, 'ORGANIZATION_NOT_FOUND'],
    ['/v1/usage?from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z', 400, 'VALIDATION_FAILED'],
    ['/v1/usage?from=yesterday', 400, 'VALIDATION_FAILED'],
    ['/v1/usage?groupBy=caller', 400, 'VALIDATION_FAILED'],
    ['/v1/usage/records?cursor=bm90IGEgY3Vyc29y', 400, 'VALIDATION_FAILED'],
  ])('answers %s with %i %s', async (path, status, code) => {
    const response = await get(path);
    expect(response.status).toBe(status);
    expect((await readJson(response)).code).toBe(code);
  });

  it('keeps the usage API to admin keys', async () => {
    expect((await get('/v1/usage', caller)).status).toBe(403);
  });

  it('counts tokens in Prometheus by model and route', async () => {
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(metrics).toMatch(/llm_tokens_total\{model="gpt-4o",route="\/v1\/chat",type="prompt"\} \d+/);
    expect(metrics).toMatch(/usage_records_dropped_total 0/);
  });
});

describe('usage ledger: nothing lost (real PostgreSQL)', () => {
  const upstream = new FakeUpstream();
  let database: TestDatabase;

  beforeAll(async () => {
    await upstream.start();
    database = await createTestDatabase();
  });

  afterAll(async () => {
    await database?.drop();
    await upstream.stop();
    delete process.env.DATABASE_URL;
  });

  it('keeps every record through a database outage during 500 calls, spilling past its buffer, and writes each once', async () => {
    const { host, port } = testDatabaseAddress();
    const proxy = await new TcpProxy(host, port).start();
    const dataDir = temporaryDataDir();
    const gateway = await startGateway({
      NODE_ENV: 'test',
      LITELLM_URL: upstream.url,
      LITELLM_API_KEY: 'sk-test',
      DATABASE_URL: database.urlVia(proxy.port),
      DATA_DIR: dataDir,
      USAGE_FLUSH_INTERVAL_MS: '100',
      USAGE_BUFFER_MAX: '100', // most of the 500 spill to the file
      GATEWAY_API_KEYS: undefined,
      GATEWAY_ADMIN_API_KEYS: undefined,
    });
    try {
      proxy.cut();
      let answered = 0;
      for (let batch = 0; batch < 10; batch += 1) {
        const responses = await Promise.all(
          Array.from({ length: 50 }, (_, index) => postJson(`${gateway.url}/v1/chat`, hello, { 'x-request-id': `outage-${batch}-${index}` })),
        );
        answered += responses.filter((response) => response.status === 200).length;
      }
      expect(answered).toBe(500);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(readdirSync(join(dataDir, 'usage-spill')).length).toBeGreaterThan(0);

      proxy.restore();
      const rows = await waitForRows(database, `request_id LIKE 'outage-%'`, (found) => found.length >= 500, 40_000);
      expect(new Set(rows.map((row) => row.request_id)).size).toBe(500);
      expect(rows).toHaveLength(500); // none twice
      await waitFor(() => readdirSync(join(dataDir, 'usage-spill')).length === 0);
    } finally {
      await gateway.close();
      await proxy.stop();
    }
  }, 90_000);

  it('replays a spill file a previous run left, at boot, exactly once', async () => {
    const dataDir = temporaryDataDir();
    const spillDir = join(dataDir, 'usage-spill');
    mkdirSync(spillDir, { recursive: true });
    const record = (index: number) => ({
      callId: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`,
      attempt: 1,
      requestId: `spilled-${index}`,
      organizationId: null,
      callerKeyId: null,
      route: '/v1/chat',
      operation: 'chat',
      requestedModel: null,
      model: 'gpt-4o',
      upstreamModel: 'gpt-4o',
      fallbackReason: null,
      outcome: 'ok',
      promptTokens: 3,
      completionTokens: 4,
      totalTokens: 7,
      cachedPromptTokens: null,
      tokensEstimated: false,
      costUsd: 0.0001,
      startedAt: new Date().toISOString(),
      timeToFirstByteMs: 5,
      durationMs: 9,
    });
    const lines = Array.from({ length: 20 }, (_, index) => JSON.stringify(record(index)));
    // The same record twice, and a last line cut short by a crash.
    writeFileSync(join(spillDir, 'usage-4242-1-abcdef01.jsonl'), `${lines.join('\n')}\n${lines[3]}\n{"callId":"trunc`);

    const environment = { NODE_ENV: 'test', LITELLM_URL: upstream.url, LITELLM_API_KEY: 'sk-test', DATABASE_URL: database.url, DATA_DIR: dataDir };
    const first = await startGateway(environment);
    await waitForRows(database, `request_id LIKE 'spilled-%'`, (rows) => rows.length === 20);
    await waitFor(() => readdirSync(spillDir).length === 0);
    await first.close();

    const second = await startGateway(environment);
    await new Promise((resolve) => setTimeout(resolve, 500));
    await second.close();
    const rows = await database.query<{ count: string }>(`SELECT count(*) AS count FROM usage_records WHERE request_id LIKE 'spilled-%'`);
    expect(Number(rows[0].count)).toBe(20);
  });

  it('writes the record of every call it accepted before exiting on SIGTERM under load (production build)', async () => {
    const gateway = await startGatewayProcess({
      NODE_ENV: 'production',
      LITELLM_URL: upstream.url,
      LITELLM_API_KEY: 'sk-test',
      GATEWAY_API_KEYS: CALLER_KEY,
      DATABASE_URL: database.url,
      SHUTDOWN_DRAIN_MS: '500',
      USAGE_FLUSH_INTERVAL_MS: '60000', // nothing is written on the interval: only the shutdown's flush can save them
      DATA_DIR: temporaryDataDir(),
    });
    const answered: string[] = [];
    let running = true;
    let sequence = 0;
    const load = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (running) {
          const id = `sigterm-${(sequence += 1)}`;
          try {
            const response = await postJson(`${gateway.url}/v1/chat`, hello, { ...caller, 'x-request-id': id });
            if (response.status === 200) answered.push(id);
          } catch {
            running = false; // the port is closed: the load stops
          }
        }
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 700));
    gateway.child.kill('SIGTERM');
    expect(await gateway.exited).toBe(0);
    running = false;
    await load;

    expect(answered.length).toBeGreaterThan(20);
    const rows = await database.query<{ request_id: string }>(`SELECT request_id FROM usage_records WHERE request_id LIKE 'sigterm-%'`);
    expect(new Set(rows.map((row) => row.request_id))).toEqual(new Set(answered));
  }, 60_000);
});

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
