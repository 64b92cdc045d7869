import { join } from 'node:path';
import { FakeUpstream, fakeChatReply, fakeEmbedding } from './support/fake-upstream';
import { parseEventStream, postJson, readJson, RunningGateway, startGateway, streamedContent } from './support/gateway';
import { createTestDatabase, TestDatabase } from './support/database';
import { RunningLiteLLM, startLiteLLM } from './support/litellm';

/**
 * The contract with the real LiteLLM proxy (the pinned version, from the project's virtualenv): the
 * gateway talks to LiteLLM, LiteLLM talks to a local fake provider. What this suite asserts is what
 * callers will see in production for each situation.
 */
describe('contract: gateway → real LiteLLM → fake provider', () => {
  const provider = new FakeUpstream();
  let litellm: RunningLiteLLM;
  let gateway: RunningGateway;
  let database: TestDatabase;
  const hello = { messages: [{ role: 'user', content: 'hello through litellm' }] };

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

  const chat = (body: unknown) => postJson(`${gateway.url}/v1/chat`, body);

  it('serves a chat completion', async () => {
    const response = await chat({ ...hello, model: 'gpt-4o', maxTokens: 20 });

    expect(response.status).toBe(200);
    const body = await readJson(response);
    expect(body.content).toBe(fakeChatReply(hello.messages));
    expect(body.model).toBe('gpt-4o');
    expect(body.usage).toEqual({ promptTokens: 3, completionTokens: 4, totalTokens: 7 });
    const [sent] = provider.requestsTo('/chat/completions');
    expect(sent.body.messages).toEqual(hello.messages);
    expect(sent.headers.authorization).toBe('Bearer sk-fake-provider-key');
  });

  it('streams the same content, then model and usage, then [DONE]', async () => {
    const response = await chat({ ...hello, stream: true });

    expect(response.status).toBe(200);
    const events = parseEventStream(await response.text());
    expect(streamedContent(events)).toBe(fakeChatReply(hello.messages));
    const summary = JSON.parse(events[events.length - 2].data);
    expect(summary.model).toContain('gpt-4o');
    expect(summary.usage.totalTokens).toBe(7);
    expect(events[events.length - 1].data).toBe('[DONE]');
  });

  it('round-trips 1536 float embeddings exactly', async () => {
    const response = await postJson(`${gateway.url}/v1/embeddings`, { input: 'embed me' });

    expect(response.status).toBe(200);
    const body = await readJson(response);
    expect(body.dimensions).toBe(1536);
    expect(body.embedding).toEqual(fakeEmbedding('embed me'));
  });

  it('round-trips a batch of embeddings in order', async () => {
    const input = ['one', 'two', 'three'];
    const response = await postJson(`${gateway.url}/v1/embeddings`, { input });

    expect(response.status).toBe(200);
    expect((await readJson(response)).embeddings).toEqual(input.map((text) => fakeEmbedding(text)));
  });

  it('answers 400 MODEL_NOT_FOUND for a model LiteLLM does not serve, without reaching the provider', async () => {
    const response = await chat({ ...hello, model: 'gpt-does-not-exist' });

    expect(response.status).toBe(400);
    const body = await readJson(response);
    expect(body.code).toBe('MODEL_NOT_FOUND');
    expect(body.message).toContain('gpt-does-not-exist');
    expect(provider.received).toHaveLength(0);
  });

  it('passes a provider 429 on as 429', async () => {
    provider.respondNext({
      status: 429,
      headers: { 'retry-after': '9' },
      body: { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } },
    });

    const response = await chat(hello);

    expect(response.status).toBe(429);
    // LiteLLM 1.103.7 does not forward the provider's Retry-After; the gateway passes one on when LiteLLM
    // sends it (see the e2e suite). This line notices the day LiteLLM starts sending it.
    expect(response.headers.get('retry-after')).toBeNull();
    expect((await readJson(response)).code).toBe('UPSTREAM_RATE_LIMITED');
    expect(provider.requestsTo('/chat/completions')).toHaveLength(1);
  });

  it('turns a provider 500 into 502 UPSTREAM_ERROR', async () => {
    provider.respondNext({ status: 500, body: { error: { message: 'provider exploded' } } });

    const response = await chat(hello);

    expect(response.status).toBe(502);
    expect((await readJson(response)).code).toBe('UPSTREAM_ERROR');
  });

  it('lists the models LiteLLM serves', async () => {
    const response = await fetch(`${gateway.url}/v1/models`);

    expect(await readJson(response)).toEqual({ models: ['claude-3-5-sonnet', 'gpt-4o', 'text-embedding-3-small'] });
  });

  it('answers 502 when LiteLLM refuses the gateway key', async () => {
    const wrongKey = await startGateway({ LITELLM_URL: litellm.url, LITELLM_API_KEY: 'sk-not-the-master-key' });
    try {
      const response = await postJson(`${wrongKey.url}/v1/chat`, hello);
      // Without a database LiteLLM answers a bad key with 400 "no_db_connection", not 401.
      expect(response.status).toBe(502);
      expect((await readJson(response)).code).toBe('UPSTREAM_AUTH_FAILED');
      expect(provider.received).toHaveLength(0);
    } finally {
      await wrongKey.close();
      process.env.LITELLM_API_KEY = litellm.masterKey;
    }
  });

  describe('organizations', () => {
    const createOrganization = async (body: object) => {
      const response = await postJson(`${gateway.url}/v1/organizations`, body);
      expect(response.status).toBe(201);
      return readJson(response);
    };
    const orgChat = (id: string, body: object = hello) => postJson(`${gateway.url}/v1/organizations/${id}/chat`, body);

    it("accepts only chat models LiteLLM serves, listing them when it refuses", async () => {
      const typo = await postJson(`${gateway.url}/v1/organizations`, { name: 'Typo', llmModel: 'gpt4o' });
      // LiteLLM marks text-embedding-3-small as an embedding model (model_info.mode): no chat model.
      const embedding = await postJson(`${gateway.url}/v1/organizations`, { name: 'Wrong kind', llmModel: 'text-embedding-3-small' });

      expect([typo.status, embedding.status]).toEqual([400, 400]);
      for (const body of [await readJson(typo), await readJson(embedding)]) {
        expect(body.code).toBe('UNKNOWN_MODEL');
        expect(body.message).toMatch(/Available models: claude-3-5-sonnet, gpt-4o$/);
      }
    });

    it("serves an organization's chat with its own model", async () => {
      const organization = await createOrganization({ name: 'Primary works' });

      const response = await orgChat(organization.id);

      expect(response.status).toBe(200);
      expect(response.headers.get('x-llm-model')).toBe('gpt-4o');
      expect(await readJson(response)).toMatchObject({ content: fakeChatReply(hello.messages), fallbackUsed: false });
      expect(provider.requestsTo('/chat/completions').map((r) => r.body.model)).toEqual(['gpt-4o']);
    });

    it('falls back, and says so, when LiteLLM does not serve the primary model', async () => {
      // As after a model is removed from LiteLLM's config: stored directly, past the API's check.
      const [organization] = await database.query<{ id: string }>(
        `INSERT INTO organizations (name, llm_model, llm_fallback_model) VALUES ('Stale model', 'gpt-retired', 'claude-3-5-sonnet') RETURNING id`,
      );

      const response = await orgChat(organization.id);

      expect(response.status).toBe(200);
      expect(response.headers.get('x-llm-model')).toBe('claude-3-5-sonnet');
      expect(response.headers.get('x-llm-fallback-reason')).toBe('MODEL_NOT_FOUND');
      expect(await readJson(response)).toMatchObject({
        content: fakeChatReply(hello.messages),
        model: 'claude-3-5-sonnet',
        fallbackUsed: true,
        fallbackReason: 'MODEL_NOT_FOUND',
      });
      // LiteLLM refused gpt-retired itself; only the fallback reached the provider.
      expect(provider.requestsTo('/chat/completions').map((r) => r.body.model)).toEqual(['claude-3-5-sonnet']);
    });

    it('falls back before the first byte of a stream', async () => {
      const organization = await createOrganization({ name: 'Streamer' });

      const response = await orgChat(organization.id, { ...hello, model: 'gpt-unknown', stream: true });

      expect(response.status).toBe(200);
      expect(response.headers.get('x-llm-fallback-reason')).toBe('MODEL_NOT_FOUND');
      const events = parseEventStream(await response.text());
      expect(streamedContent(events)).toBe(fakeChatReply(hello.messages));
      expect(JSON.parse(events[events.length - 2].data)).toMatchObject({ model: 'claude-3-5-sonnet', fallbackUsed: true });
    });

    it("names a provider's content-policy refusal UPSTREAM_CONTENT_POLICY, and does not re-send the prompt to the fallback", async () => {
      const organization = await createOrganization({ name: 'Careful' });
      // OpenAI's own answer; LiteLLM turns it into its ContentPolicyViolationError, still a 400.
      provider.respondNext({
        status: 400,
        body: { error: { message: 'Your request was rejected as a result of our safety system.', type: 'invalid_request_error', code: 'content_policy_violation' } },
      });

      const response = await orgChat(organization.id);

      expect(response.status).toBe(400);
      expect(await readJson(response)).toMatchObject({ code: 'UPSTREAM_CONTENT_POLICY', message: expect.stringContaining('ContentPolicyViolationError') });
      expect(provider.requestsTo('/chat/completions').map((r) => r.body.model)).toEqual(['gpt-4o']);
    });

    it('does not fall back on a provider 429', async () => {
      const organization = await createOrganization({ name: 'Rate limited' });
      provider.respondNext({ status: 429, body: { error: { message: 'Rate limit reached' } } });

      const response = await orgChat(organization.id);

      expect(response.status).toBe(429);
      expect(provider.requestsTo('/chat/completions')).toHaveLength(1);
    });
  });
});
