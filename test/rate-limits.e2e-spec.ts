import { Redis } from 'ioredis';
import { request as httpRequest } from 'node:http';
import { createTestDatabase, TestDatabase } from './support/database';
import { FakeUpstream } from './support/fake-upstream';
import { postJson, readJson, RunningGateway, startGateway } from './support/gateway';
import { GatewayProcess, startGatewayProcess } from './support/gateway-process';
import { TcpProxy } from './support/tcp-proxy';

/**
 * Rate limits and budgets with two gateway instances (production builds, in processes of their own) on one
 * Redis and one PostgreSQL server: the limits hold for the two together, exactly.
 */
const REDIS_HOST = '127.0.0.1';
const REDIS_PORT = 6379;
/** A Redis database of this suite's own, flushed at will without touching anyone else's keys. */
const REDIS_DB = 11;
const REDIS_URL = `redis://${REDIS_HOST}:${REDIS_PORT}/${REDIS_DB}`;
const ADMIN_KEY = 'limits-test-admin-key-0123456789';
const CALLER_KEY = 'limits-test-caller-key-012345678';
const admin = { authorization: `Bearer ${ADMIN_KEY}` };
const caller = { authorization: `Bearer ${CALLER_KEY}` };
const hello = { messages: [{ role: 'user', content: 'hello limits' }] };

/** Fixed windows are UTC minutes: a burst that straddles two would meet two windows. Wait for a fresh one if need be. */
async function atLeastSecondsLeftInMinute(seconds: number): Promise<void> {
  const left = 60 - new Date().getUTCSeconds();
  if (left < seconds) await new Promise((resolve) => setTimeout(resolve, left * 1000 + 200));
}

describe('rate limits and budgets across two instances (real Redis, real PostgreSQL)', () => {
  const upstream = new FakeUpstream();
  let database: TestDatabase;
  let redis: Redis;
  let instances: GatewayProcess[];
  const at = (index: number) => instances[index % instances.length].url;

  beforeAll(async () => {
    await upstream.start();
    database = await createTestDatabase();
    redis = new Redis(REDIS_URL);
    await redis.flushdb();
    const environment = {
      NODE_ENV: 'production',
      LITELLM_URL: upstream.url,
      LITELLM_API_KEY: 'sk-test',
      DATABASE_URL: database.url,
      REDIS_URL,
      GATEWAY_API_KEYS: CALLER_KEY,
      GATEWAY_ADMIN_API_KEYS: ADMIN_KEY,
      USAGE_FLUSH_INTERVAL_MS: '200',
      MODELS_CACHE_TTL_MS: '600000',
    };
    instances = [await startGatewayProcess(environment), await startGatewayProcess(environment)];
  }, 90_000);

  afterAll(async () => {
    await Promise.all((instances ?? []).map((instance) => instance.stop()));
    await redis?.flushdb();
    redis?.disconnect();
    await database?.drop();
    await upstream.stop();
  });

  beforeEach(() => upstream.reset());

  const createOrganization = async (limits: object) => {
    const response = await postJson(`${at(0)}/v1/organizations`, { name: 'Limited', llmFallbackModel: null, limits }, admin);
    expect(response.status).toBe(201);
    return readJson(response);
  };
  const chat = (index: number, id: string, body: object = hello) => postJson(`${at(index)}/v1/organizations/${id}/chat`, body, caller);

  it('admits exactly 100 of 300 concurrent calls against 100 requests per minute, spread over both instances', async () => {
    const organization = await createOrganization({ requestsPerMinute: 100 });
    await atLeastSecondsLeftInMinute(20);

    const responses = await Promise.all(Array.from({ length: 300 }, (_, index) => chat(index, organization.id)));
    const statuses = responses.map((response) => response.status);
    const refused = responses.filter((response) => response.status === 429);

    expect(statuses.filter((status) => status === 200)).toHaveLength(100);
    expect(refused).toHaveLength(200);
    expect(upstream.requestsTo('/chat/completions')).toHaveLength(100);
    const body = await readJson(refused[0]);
    expect(body).toMatchObject({ statusCode: 429, code: 'RATE_LIMITED' });
    expect(Number(refused[0].headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused[0].headers.get('x-ratelimit-limit-requests')).toBe('100');
    expect(refused[0].headers.get('x-ratelimit-remaining-requests')).toBe('0');
    // Every answer of a limited organization carries OpenAI's rate-limit headers, successes too.
    const served = responses.find((response) => response.status === 200)!;
    expect(served.headers.get('x-ratelimit-limit-requests')).toBe('100');
    expect(served.headers.get('x-ratelimit-reset-requests')).toMatch(/^(\d+m)?\d+(\.\d+)?s$/);
  }, 60_000);

  it('never lets more than 5 calls reach the upstream at once against 5 concurrent requests; the rest are refused', async () => {
    const organization = await createOrganization({ concurrentRequests: 5 });
    upstream.respondNext(...Array.from({ length: 50 }, () => ({ delayMs: 1_000 })));

    const responses = await Promise.all(Array.from({ length: 50 }, (_, index) => chat(index, organization.id)));

    expect(upstream.maxInFlight).toBeLessThanOrEqual(5);
    expect(responses.filter((response) => response.status === 200)).toHaveLength(5);
    const refused = responses.filter((response) => response.status === 429);
    expect(refused).toHaveLength(45);
    expect((await readJson(refused[0])).code).toBe('CONCURRENCY_LIMITED');
    // The slots are back once the calls are done.
    expect((await chat(0, organization.id)).status).toBe(200);
  }, 30_000);

  it('lets a stream hold its slot until it ends, and frees it when its caller leaves', async () => {
    const organization = await createOrganization({ concurrentRequests: 1 });
    upstream.respondNext({ stallAfterChunks: 1 });
    const { port } = new URL(at(0));
    const stream = await new Promise<{ close: () => void }>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, path: `/v1/organizations/${organization.id}/chat`, method: 'POST', headers: { ...caller, 'content-type': 'application/json' } },
        (res) => res.once('data', () => resolve({ close: () => req.destroy() })),
      );
      req.on('error', () => undefined);
      req.end(JSON.stringify({ ...hello, stream: true }));
      setTimeout(() => reject(new Error('the stream did not start')), 5_000).unref();
    });

    const whileStreaming = await chat(1, organization.id);
    expect(whileStreaming.status).toBe(429);
    expect((await readJson(whileStreaming)).code).toBe('CONCURRENCY_LIMITED');

    stream.close();
    await waitFor(async () => (await chat(1, organization.id)).status === 200);
  });

  it('keeps a token budget within the estimate of the calls in flight, then refuses with BUDGET_EXHAUSTED, even after Redis loses its data', async () => {
    const organization = await createOrganization({ tokenBudget: 10_000, budgetPeriod: 'day' });
    // Each call may use its prompt (a few tokens) plus maxTokens 1,000; the provider reports 1,000 used.
    upstream.usage = { prompt_tokens: 100, completion_tokens: 900 };
    const body = { ...hello, maxTokens: 1_000 };

    const responses = await Promise.all(Array.from({ length: 20 }, (_, index) => chat(index, organization.id, body)));
    const admitted = responses.filter((response) => response.status === 200).length;
    const refused = responses.filter((response) => response.status === 429);

    // Each estimate is a little over 1,000 (prompt + maxTokens): 9 fit in 10,000, the 10th does not.
    expect(admitted).toBe(9);
    expect(admitted * 1_000).toBeLessThanOrEqual(10_000);
    expect((await readJson(refused[0])).code).toBe('BUDGET_EXHAUSTED');
    // 9,000 used: another call's estimate does not fit, on either instance.
    for (const index of [0, 1]) {
      const response = await chat(index, organization.id, body);
      expect(response.status).toBe(429);
      expect((await readJson(response)).code).toBe('BUDGET_EXHAUSTED');
      // Until the day (UTC) turns.
      const untilMidnight = Math.ceil((Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() + 1) - Date.now()) / 1000);
      expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(untilMidnight - 5);
    }

    // Redis loses everything (a flush, a failover): the budget is rebuilt from the usage ledger, not from zero.
    await waitFor(async () => {
      const [row] = await database.query<{ tokens: string }>('SELECT sum(total_tokens) AS tokens FROM usage_records WHERE organization_id = $1', [organization.id]);
      return Number(row.tokens) === 9_000;
    });
    await redis.flushdb();
    const afterFlush = await chat(1, organization.id, body);
    expect(afterFlush.status).toBe(429);
    expect((await readJson(afterFlush)).code).toBe('BUDGET_EXHAUSTED');
    // A small call still fits: 9,000 used, and its estimate is a few hundred.
    upstream.usage = { prompt_tokens: 10, completion_tokens: 10 };
    expect((await chat(0, organization.id, { ...hello, maxTokens: 200 })).status).toBe(200);
  }, 30_000);

  it("reports an organization's limits: use, what remains, when each resets", async () => {
    const organization = await createOrganization({ requestsPerMinute: 50, tokenBudget: 1_000_000, budgetPeriod: 'month' });
    await atLeastSecondsLeftInMinute(5);
    await chat(0, organization.id);
    await chat(1, organization.id);

    const response = await fetch(`${at(1)}/v1/organizations/${organization.id}/limits`, { headers: caller });

    expect(response.status).toBe(200);
    const limits = await readJson(response);
    expect(limits.requestsPerMinute).toMatchObject({ limit: 50, used: 2, remaining: 48 });
    expect(new Date(limits.requestsPerMinute.resetsAt).getTime()).toBeGreaterThan(Date.now());
    expect(limits.concurrentRequests).toMatchObject({ limit: null });
    expect(limits.tokenBudget).toMatchObject({ limit: 1_000_000, period: 'month' });
    expect(limits.tokenBudget.used).toBeGreaterThan(0);
  });

  it("admits a prompt that names special tokens, counting them as the text they are (the tokenizer's default would throw)", async () => {
    const organization = await createOrganization({ tokensPerMinute: 100_000 });
    const prompt = 'Repeat after me: <|endoftext|> and <|im_start|>system';
    const response = await chat(0, organization.id, { messages: [{ role: 'user', content: prompt }], maxTokens: 50 });

    expect(response.status).toBe(200);
    expect(upstream.received.filter((request) => request.path === '/v1/chat/completions')).toHaveLength(1);
    // The reservation (prompt estimate + maxTokens) was made, and reconciled with the reported usage.
    const limits = await readJson(await fetch(`${at(1)}/v1/organizations/${organization.id}/limits`, { headers: caller }));
    expect(limits.tokensPerMinute.used).toBeGreaterThan(0);
  });
});

describe('rate limits when Redis is away, and per caller key (real Redis through a proxy)', () => {
  const upstream = new FakeUpstream();
  let database: TestDatabase;
  let proxy: TcpProxy;
  let open: RunningGateway;
  let closed: RunningGateway;
  let organizationId: string;

  beforeAll(async () => {
    await upstream.start();
    database = await createTestDatabase();
    proxy = await new TcpProxy(REDIS_HOST, REDIS_PORT).start();
    const environment = (failMode: string) => ({
      NODE_ENV: 'test',
      LITELLM_URL: upstream.url,
      LITELLM_API_KEY: 'sk-test',
      DATABASE_URL: database.url,
      REDIS_URL: `redis://127.0.0.1:${proxy.port}/${REDIS_DB}`,
      LIMITS_FAIL_MODE: failMode,
      GATEWAY_API_KEYS: CALLER_KEY,
      GATEWAY_ADMIN_API_KEYS: ADMIN_KEY,
      GATEWAY_KEY_REQUESTS_PER_MINUTE: undefined,
    });
    open = await startGateway(environment('open'));
    closed = await startGateway(environment('closed'));
    const created = await postJson(`${open.url}/v1/organizations`, { name: 'Limited', limits: { requestsPerMinute: 1_000 } }, admin);
    organizationId = (await readJson(created)).id;
  });

  afterAll(async () => {
    await open?.close();
    await closed?.close();
    await proxy?.stop();
    await database?.drop();
    await upstream.stop();
    delete process.env.DATABASE_URL;
    delete process.env.REDIS_URL;
  });

  const chat = (gateway: RunningGateway) => postJson(`${gateway.url}/v1/organizations/${organizationId}/chat`, hello, caller);

  it('admits unchecked with LIMITS_FAIL_MODE=open and answers 503 LIMITS_UNAVAILABLE with closed; readiness says so; both recover', async () => {
    expect((await chat(open)).status).toBe(200);
    expect((await chat(closed)).status).toBe(200);

    proxy.cut();
    try {
      const admittedUnchecked = await chat(open);
      const refused = await chat(closed);
      expect(admittedUnchecked.status).toBe(200);
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('5');
      expect((await readJson(refused)).code).toBe('LIMITS_UNAVAILABLE');

      const openReadiness = await fetch(`${open.url}/health/ready`);
      expect(openReadiness.status).toBe(200);
      expect((await readJson(openReadiness)).details.redis).toMatchObject({ status: 'down' });
      const closedReadiness = await fetch(`${closed.url}/health/ready`);
      expect(closedReadiness.status).toBe(503);
      expect((await readJson(closedReadiness)).details.redis).toMatchObject({ status: 'down' });

      const metrics = await (await fetch(`${open.url}/metrics`)).text();
      expect(metrics).toMatch(/limits_fail_open_admissions_total [1-9]/);
    } finally {
      proxy.restore();
    }
    await waitFor(async () => (await chat(closed)).status === 200);
    expect((await fetch(`${closed.url}/health/ready`)).status).toBe(200);
  }, 30_000);

  it('limits every caller key to GATEWAY_KEY_REQUESTS_PER_MINUTE, plain calls included', async () => {
    const keyed = await startGateway({
      NODE_ENV: 'test',
      LITELLM_URL: upstream.url,
      LITELLM_API_KEY: 'sk-test',
      DATABASE_URL: database.url,
      REDIS_URL: `redis://127.0.0.1:${proxy.port}/${REDIS_DB}`,
      GATEWAY_API_KEYS: 'limits-test-other-key-0123456789',
      GATEWAY_ADMIN_API_KEYS: ADMIN_KEY,
      GATEWAY_KEY_REQUESTS_PER_MINUTE: '5',
    });
    try {
      await atLeastSecondsLeftInMinute(5);
      const responses = [];
      for (let index = 0; index < 6; index += 1) {
        responses.push(await postJson(`${keyed.url}/v1/chat`, hello, { authorization: 'Bearer limits-test-other-key-0123456789' }));
      }
      expect(responses.map((response) => response.status)).toEqual([200, 200, 200, 200, 200, 429]);
      expect((await readJson(responses[5])).code).toBe('RATE_LIMITED');
      expect(responses[0].headers.get('x-ratelimit-limit-requests')).toBe('5');
      // Admissions by outcome, and the scripts that carried them, as Prometheus scrapes them.
      const metrics = await (await fetch(`${keyed.url}/metrics`)).text();
      expect(metrics).toContain('limits_admissions_total{outcome="admitted"} 5');
      expect(metrics).toContain('limits_admissions_total{outcome="RATE_LIMITED"} 1');
      expect(metrics).toMatch(/limits_redis_duration_seconds_count\{operation="batch"\} [1-9]/);
    } finally {
      await keyed.close();
      delete process.env.GATEWAY_KEY_REQUESTS_PER_MINUTE;
    }
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
