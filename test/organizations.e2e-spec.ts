import { createTestDatabase, TestDatabase, testDatabaseAddress } from './support/database';
import { FakeUpstream, fakeChatReply } from './support/fake-upstream';
import { parseEventStream, postJson, readJson, RunningGateway, startGateway } from './support/gateway';
import { TcpProxy } from './support/tcp-proxy';

/**
 * Organizations on the real PostgreSQL server (a database of the suite's own, reached through a proxy
 * the suite can cut), with a fake upstream standing where LiteLLM would.
 */
describe('organizations (real PostgreSQL, fake upstream)', () => {
  const upstream = new FakeUpstream();
  let database: TestDatabase;
  let proxy: TcpProxy;
  let gateway: RunningGateway;
  const hello = { messages: [{ role: 'user', content: 'hello org' }] };
  /** Every instance of the suite: the fake upstream, the suite's database through the proxy it can cut. */
  const gatewayEnvironment = (orgCacheTtlMs: number) => ({
    NODE_ENV: 'test',
    LITELLM_URL: upstream.url,
    LITELLM_API_KEY: 'sk-test',
    DATABASE_URL: database.urlVia(proxy.port),
    ORG_CACHE_TTL_MS: String(orgCacheTtlMs),
    MODELS_CACHE_TTL_MS: '0',
  });

  beforeAll(async () => {
    await upstream.start();
    database = await createTestDatabase();
    const { host, port } = testDatabaseAddress();
    proxy = await new TcpProxy(host, port).start();
    gateway = await startGateway(gatewayEnvironment(60_000));
  });

  afterAll(async () => {
    await gateway?.close();
    await proxy?.stop();
    await database?.drop();
    await upstream.stop();
    delete process.env.DATABASE_URL;
  });

  beforeEach(() => upstream.reset());

  const api = (path: string) => `${gateway.url}/v1/organizations${path}`;
  const createOrganization = async (body: object) => {
    const response = await postJson(api(''), body);
    expect(response.status).toBe(201);
    return readJson(response);
  };
  const patch = (id: string, body: object) =>
    fetch(api(`/${id}`), { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  describe('CRUD', () => {
    it('creates an organization with the default models, stored as the migration defines', async () => {
      const created = await createOrganization({ name: 'Acme' });

      expect(created).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        name: 'Acme',
        llmModel: 'gpt-4o',
        llmFallbackModel: 'claude-3-5-sonnet',
        limits: { requestsPerMinute: null, tokensPerMinute: null, concurrentRequests: null, tokenBudget: null, budgetPeriod: 'month' },
        createdAt: expect.any(String),
        updatedAt: expect.any(String),
      });
      const [row] = await database.query('SELECT name, llm_model, llm_fallback_model FROM organizations WHERE id = $1', [created.id]);
      expect(row).toEqual({ name: 'Acme', llm_model: 'gpt-4o', llm_fallback_model: 'claude-3-5-sonnet' });
    });

    it("keeps a caller-chosen id, and answers 409 when it is taken", async () => {
      const id = 'a3bb189e-8bf9-4888-9912-ace4e6543002';
      expect((await createOrganization({ id, name: 'Sibling-owned id' })).id).toBe(id);

      const again = await postJson(api(''), { id, name: 'Duplicate' });

      expect(again.status).toBe(409);
      expect(await readJson(again)).toMatchObject({ code: 'ORGANIZATION_EXISTS' });
    });

    it('creates with explicit models, and with no fallback', async () => {
      const created = await createOrganization({ name: 'Claude shop', llmModel: 'claude-3-5-sonnet', llmFallbackModel: null });
      expect(created).toMatchObject({ llmModel: 'claude-3-5-sonnet', llmFallbackModel: null });
    });

    it('refuses a model LiteLLM does not serve, listing those it does; nothing is stored', async () => {
      const response = await postJson(api(''), { name: 'Nope', llmModel: 'gpt-9' });

      expect(response.status).toBe(400);
      const body = await readJson(response);
      expect(body.code).toBe('UNKNOWN_MODEL');
      expect(body.message).toContain('llmModel "gpt-9"');
      expect(body.message).toContain('claude-3-5-sonnet, gpt-4o, text-embedding-3-small');
      expect(await database.query("SELECT 1 FROM organizations WHERE name = 'Nope'")).toHaveLength(0);
    });

    it('refuses a fallback equal to the primary', async () => {
      const response = await postJson(api(''), { name: 'Same', llmModel: 'gpt-4o', llmFallbackModel: 'gpt-4o' });

      expect(response.status).toBe(400);
      expect((await readJson(response)).code).toBe('FALLBACK_SAME_AS_PRIMARY');
    });

    it('refuses the write with 503 when LiteLLM cannot be asked, storing nothing', async () => {
      upstream.respondNext({ path: '/models', status: 503 });

      const response = await postJson(api(''), { name: 'Unchecked' });

      expect(response.status).toBe(503);
      const body = await readJson(response);
      expect(body.code).toBe('MODEL_CATALOG_UNAVAILABLE');
      expect(body.message).toContain('nothing was stored');
      expect(await database.query("SELECT 1 FROM organizations WHERE name = 'Unchecked'")).toHaveLength(0);
    });

    it.each([
      [{}, 'name must be a string'],
      [{ name: '' }, 'name must be longer than or equal to 1 characters'],
      [{ name: 'x', id: 'not-a-uuid' }, 'id must be a UUID'],
      [{ name: 'x', llmModel: 5 }, 'llmModel must be a string'],
      [{ name: 'x', extra: true }, 'property extra should not exist'],
    ])('rejects %j with 400', async (body, message) => {
      const response = await postJson(api(''), body);

      expect(response.status).toBe(400);
      expect((await readJson(response)).message).toContain(message);
    });

    it('reads one, 404 when absent, 400 when the id is not a UUID', async () => {
      const created = await createOrganization({ name: 'Readable' });

      expect(await readJson(await fetch(api(`/${created.id}`)))).toEqual(created);
      const missing = await fetch(api('/5d8e9a1c-0000-4000-8000-000000000000'));
      expect(missing.status).toBe(404);
      expect((await readJson(missing)).code).toBe('ORGANIZATION_NOT_FOUND');
      const malformed = await fetch(api('/123'));
      expect(malformed.status).toBe(400);
      expect((await readJson(malformed)).message).toBe('id must be a UUID');
    });

    it('lists page by page, oldest first', async () => {
      const all = await readJson(await fetch(api('?limit=100')));
      const firstTwo = await readJson(await fetch(api('?limit=2&offset=0')));
      const next = await readJson(await fetch(api('?limit=2&offset=2')));

      expect(all.total).toBeGreaterThanOrEqual(4);
      expect(firstTwo).toMatchObject({ limit: 2, offset: 0, total: all.total });
      expect([...firstTwo.items, ...next.items].map((o: { id: string }) => o.id)).toEqual(
        all.items.slice(0, 4).map((o: { id: string }) => o.id),
      );
      expect((await fetch(api('?limit=0'))).status).toBe(400);
      expect((await fetch(api('?limit=abc'))).status).toBe(400);
    });

    it.each(['offset=9223372036854775808', 'offset=1e308', 'offset=1000001', 'limit=101', 'offset=-1'])(
      'answers 400 naming the limit for %s, never a database error',
      async (query) => {
        const response = await fetch(api(`?${query}`));

        expect(response.status).toBe(400);
        const body = await readJson(response);
        expect(body.code).toBe('VALIDATION_FAILED');
        expect(body.message).toMatch(/^(offset|limit) must not be (greater|less) than (1000000|100|0|1)$/);
      },
    );

    it('sets limits on create, changes only the ones a PATCH names, and null lifts one', async () => {
      const created = await createOrganization({ name: 'Limited', limits: { requestsPerMinute: 100, tokenBudget: 5_000_000_000, budgetPeriod: 'day' } });
      expect(created.limits).toEqual({ requestsPerMinute: 100, tokensPerMinute: null, concurrentRequests: null, tokenBudget: 5_000_000_000, budgetPeriod: 'day' });

      const patched = await readJson(await patch(created.id, { limits: { concurrentRequests: 5, requestsPerMinute: null } }));

      expect(patched.limits).toEqual({ requestsPerMinute: null, tokensPerMinute: null, concurrentRequests: 5, tokenBudget: 5_000_000_000, budgetPeriod: 'day' });
      expect((await database.query(`SELECT concurrent_requests, token_budget FROM organizations WHERE id = $1`, [created.id]))[0]).toEqual({
        concurrent_requests: 5,
        token_budget: '5000000000',
      });
    });

    it.each([
      [{ limits: { requestsPerMinute: 0 } }, 'limits.requestsPerMinute must not be less than 1'],
      [{ limits: { tokensPerMinute: 1.5 } }, 'limits.tokensPerMinute must be an integer number'],
      [{ limits: { budgetPeriod: 'week' } }, 'limits.budgetPeriod must be one of the following values: day, month'],
      [{ limits: { budgetPeriod: null } }, 'limits.budgetPeriod must be one of the following values'],
      [{ limits: { perHour: 5 } }, 'limits.perHour: property perHour should not exist'],
      [{ limits: 'unlimited' }, 'limits must be an object'],
    ])('refuses bad limits %j with 400 naming the field', async (body, message) => {
      const response = await postJson(api(''), { name: 'Bad limits', ...body });
      expect(response.status).toBe(400);
      expect((await readJson(response)).message).toContain(message);
    });

    it('updates the name and models; llmFallbackModel: null clears the fallback', async () => {
      const created = await createOrganization({ name: 'Changing' });

      const renamed = await readJson(await patch(created.id, { name: 'Changed', llmModel: 'claude-3-5-sonnet', llmFallbackModel: null }));

      expect(renamed).toMatchObject({ name: 'Changed', llmModel: 'claude-3-5-sonnet', llmFallbackModel: null });
      expect(new Date(renamed.updatedAt).getTime()).toBeGreaterThanOrEqual(new Date(created.updatedAt).getTime());
      expect((await patch(created.id, { llmModel: 'gpt-9' })).status).toBe(400);
      expect((await patch(created.id, { llmModel: null })).status).toBe(400);
      expect((await patch(created.id, { llmFallbackModel: 'claude-3-5-sonnet' })).status).toBe(400);
      expect((await patch('5d8e9a1c-0000-4000-8000-000000000000', { name: 'x' })).status).toBe(404);
    });

    it('deletes: 204, then 404', async () => {
      const created = await createOrganization({ name: 'Doomed' });

      expect((await fetch(api(`/${created.id}`), { method: 'DELETE' })).status).toBe(204);
      expect((await fetch(api(`/${created.id}`))).status).toBe(404);
      expect((await fetch(api(`/${created.id}`), { method: 'DELETE' })).status).toBe(404);
    });
  });

  describe('POST /v1/organizations/:id/chat', () => {
    let organization: { id: string };
    const chat = (id: string, body: object = hello) => postJson(api(`/${id}/chat`), body);

    beforeAll(async () => {
      organization = await createOrganization({ name: 'Chatty', llmModel: 'gpt-4o', llmFallbackModel: 'claude-3-5-sonnet' });
    });

    it("serves with the organization's model and says so", async () => {
      const response = await chat(organization.id);

      expect(response.status).toBe(200);
      expect(response.headers.get('x-llm-model')).toBe('gpt-4o');
      expect(response.headers.get('x-llm-fallback-reason')).toBeNull();
      expect(await readJson(response)).toMatchObject({
        content: fakeChatReply(hello.messages),
        model: 'gpt-4o',
        fallbackUsed: false,
      });
      expect(upstream.requestsTo('/chat/completions').map((r) => r.body.model)).toEqual(['gpt-4o']);
    });

    it.each([400, 401, 403, 404])('falls back once when the primary answers %i, and says why', async (status) => {
      upstream.respondNext({ status, body: { error: { message: `primary refused with ${status}` } } });

      const response = await chat(organization.id);

      expect(response.status).toBe(200);
      expect(response.headers.get('x-llm-model')).toBe('claude-3-5-sonnet');
      expect(response.headers.get('x-llm-fallback-reason')).toEqual(expect.stringMatching(/^[A-Z_]+$/));
      expect(await readJson(response)).toMatchObject({ model: 'claude-3-5-sonnet', fallbackUsed: true });
      expect(upstream.requestsTo('/chat/completions').map((r) => r.body.model)).toEqual(['gpt-4o', 'claude-3-5-sonnet']);
    });

    it.each([
      [429, 429],
      [500, 502],
      [503, 502],
    ])('sends a retryable %i back as %i, without fallback or retry', async (upstreamStatus, status) => {
      upstream.respondNext({ status: upstreamStatus, headers: { 'retry-after': '4' } });

      const response = await chat(organization.id);

      expect(response.status).toBe(status);
      expect(upstream.requestsTo('/chat/completions')).toHaveLength(1);
    });

    it('names both attempts when the fallback fails too', async () => {
      upstream.respondNext({ status: 400, body: { error: { message: 'Invalid model name passed in model=gpt-4o' } } }, { status: 401 });

      const response = await chat(organization.id);

      expect(response.status).toBe(502);
      const body = await readJson(response);
      expect(body.code).toBe('UPSTREAM_AUTH_FAILED');
      expect(body.message).toContain('Primary model gpt-4o failed (MODEL_NOT_FOUND');
      expect(body.message).toContain('fallback model claude-3-5-sonnet failed too (UPSTREAM_AUTH_FAILED');
    });

    it('streams, falling back before the first byte', async () => {
      upstream.respondNext({ status: 404, body: { error: { message: 'model gone' } } });

      const response = await chat(organization.id, { ...hello, stream: true });

      expect(response.status).toBe(200);
      expect(response.headers.get('x-llm-model')).toBe('claude-3-5-sonnet');
      expect(response.headers.get('x-llm-fallback-reason')).toBe('MODEL_NOT_FOUND');
      const events = parseEventStream(await response.text());
      expect(JSON.parse(events[events.length - 2].data)).toMatchObject({ model: 'claude-3-5-sonnet', fallbackUsed: true });
      expect(events[events.length - 1].data).toBe('[DONE]');
    });

    it('does not fall back once a stream has started', async () => {
      upstream.respondNext({ streamErrorAfterChunks: 1 });

      const response = await chat(organization.id, { ...hello, stream: true });

      const events = parseEventStream(await response.text());
      expect(events[events.length - 1].event).toBe('error');
      expect(upstream.requestsTo('/chat/completions')).toHaveLength(1);
    });

    it('has no fallback when the organization has none', async () => {
      const solo = await createOrganization({ name: 'Solo', llmFallbackModel: null });
      upstream.respondNext({ status: 400, body: { error: { message: 'bad request' } } });

      const response = await chat(solo.id);

      expect(response.status).toBe(400);
      expect(upstream.requestsTo('/chat/completions')).toHaveLength(1);
    });

    it("lets the request's model override the organization's for one call", async () => {
      const response = await chat(organization.id, { ...hello, model: 'claude-3-5-sonnet' });

      expect(response.headers.get('x-llm-model')).toBe('claude-3-5-sonnet');
      expect(upstream.requestsTo('/chat/completions')[0].body.model).toBe('claude-3-5-sonnet');
    });

    it('answers 404 for an unknown organization and 400 for a malformed id, sending nothing upstream', async () => {
      const unknown = await chat('5d8e9a1c-0000-4000-8000-000000000000');
      const malformed = await chat('not-a-uuid');

      expect(unknown.status).toBe(404);
      expect((await readJson(unknown)).code).toBe('ORGANIZATION_NOT_FOUND');
      expect(malformed.status).toBe(400);
      // Nothing but, possibly, the model list: with MODELS_CACHE_TTL_MS=0 the previous test's usage record
      // (its model's metric label) refreshes it in the background, and that GET can land during this test.
      expect(upstream.received.filter((request) => !(request.method === 'GET' && request.path === '/v1/models'))).toHaveLength(0);
    });

    it('picks up a PATCH at once: the cached preferences are dropped', async () => {
      const org = await createOrganization({ name: 'Switcher' });
      await chat(org.id); // cached with gpt-4o

      await patch(org.id, { llmModel: 'claude-3-5-sonnet', llmFallbackModel: null });
      upstream.reset();
      await chat(org.id);

      expect(upstream.requestsTo('/chat/completions')[0].body.model).toBe('claude-3-5-sonnet');
    });

    it('keeps serving cached organizations while the database is unreachable; others get 503 with Retry-After', async () => {
      const cached = await createOrganization({ name: 'Cached' });
      const uncached = await createOrganization({ name: 'Uncached' });
      expect((await chat(cached.id)).status).toBe(200);

      proxy.cut();
      try {
        const served = await chat(cached.id);
        const refused = await chat(uncached.id);

        expect(served.status).toBe(200);
        expect(refused.status).toBe(503);
        expect(refused.headers.get('retry-after')).toBe('5');
        expect((await readJson(refused)).code).toBe('DATABASE_UNAVAILABLE');
      } finally {
        proxy.restore();
      }
      expect((await chat(uncached.id)).status).toBe(200);
    });
  });

  describe('across instances', () => {
    let other: RunningGateway;

    beforeAll(async () => {
      // A second instance on the same database, caching for 10 minutes: only the change feed can update it in time.
      other = await startGateway(gatewayEnvironment(600_000));
    });

    afterAll(async () => {
      await other?.close();
    });

    const chatOnOther = (id: string) => postJson(`${other.url}/v1/organizations/${id}/chat`, hello);

    /** What the other instance answers, once it differs from `before` or after 10 s. */
    async function otherAnswerAfterChange(id: string, before: string | null): Promise<string | null> {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const response = await chatOnOther(id);
        const seen = response.status === 200 ? response.headers.get('x-llm-model') : String(response.status);
        if (seen !== before || Date.now() > deadline) return seen;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }

    it('a PATCH or a DELETE through one instance reaches the cache of another at once, not after its TTL', async () => {
      const org = await createOrganization({ name: 'Shared', llmModel: 'gpt-4o', llmFallbackModel: null });
      expect((await chatOnOther(org.id)).headers.get('x-llm-model')).toBe('gpt-4o');

      expect((await patch(org.id, { llmModel: 'claude-3-5-sonnet' })).status).toBe(200);
      expect(await otherAnswerAfterChange(org.id, 'gpt-4o')).toBe('claude-3-5-sonnet');

      expect((await fetch(api(`/${org.id}`), { method: 'DELETE' })).status).toBe(204);
      expect(await otherAnswerAfterChange(org.id, 'claude-3-5-sonnet')).toBe('404');
    });

    it('listens again once the database is back, and drops what it cached meanwhile', async () => {
      const org = await createOrganization({ name: 'Shared twice', llmModel: 'gpt-4o', llmFallbackModel: null });
      expect((await chatOnOther(org.id)).headers.get('x-llm-model')).toBe('gpt-4o');
      const listening = async () => /^organization_change_feed_listening (\d)$/m.exec(await (await fetch(`${other.url}/metrics`)).text())?.[1];
      expect(await listening()).toBe('1');

      proxy.cut();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await listening()).toBe('0');
      proxy.restore();
      // Changed behind the instances' backs (the admin connection does not go through the proxy).
      await database.query(`UPDATE organizations SET llm_model = 'claude-3-5-sonnet' WHERE id = $1`, [org.id]);

      expect(await otherAnswerAfterChange(org.id, 'gpt-4o')).toBe('claude-3-5-sonnet');
      expect(await listening()).toBe('1');
    }, 20_000);
  });
});
