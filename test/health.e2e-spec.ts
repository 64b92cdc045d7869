import { join } from 'node:path';
import { createTestDatabase, TestDatabase, testDatabaseAddress } from './support/database';
import { FakeUpstream } from './support/fake-upstream';
import { readJson, RunningGateway, startGateway } from './support/gateway';
import { RunningLiteLLM, startLiteLLM } from './support/litellm';
import { TcpProxy } from './support/tcp-proxy';

/**
 * The probes against the real dependencies: PostgreSQL and the real LiteLLM, each behind a TCP proxy
 * the suite cuts to take it away and restores to bring it back.
 */
describe('health probes (real PostgreSQL, real LiteLLM)', () => {
  const provider = new FakeUpstream();
  let litellm: RunningLiteLLM;
  let database: TestDatabase;
  let databaseProxy: TcpProxy;
  let litellmProxy: TcpProxy;
  let gateway: RunningGateway;

  beforeAll(async () => {
    await provider.start();
    database = await createTestDatabase();
    const { host, port } = testDatabaseAddress();
    databaseProxy = await new TcpProxy(host, port).start();
    litellm = await startLiteLLM(join(__dirname, 'support', 'litellm.test-config.yaml'), {
      FAKE_UPSTREAM_API_BASE: `${provider.url}/v1`,
      FAKE_PROVIDER_API_KEY: 'sk-fake-provider-key',
    });
    litellmProxy = await new TcpProxy('127.0.0.1', Number(new URL(litellm.url).port)).start();
    gateway = await startGateway({
      LITELLM_URL: `http://127.0.0.1:${litellmProxy.port}`,
      LITELLM_API_KEY: litellm.masterKey,
      DATABASE_URL: database.urlVia(databaseProxy.port),
      HEALTH_CHECK_TIMEOUT_MS: '1000',
    });
  }, 180_000);

  afterAll(async () => {
    await gateway?.close();
    await litellmProxy?.stop();
    await databaseProxy?.stop();
    await litellm?.stop();
    await database?.drop();
    await provider.stop();
    delete process.env.DATABASE_URL;
  });

  afterEach(() => {
    databaseProxy.restore();
    litellmProxy.restore();
  });

  const probe = async (path: string) => {
    const response = await fetch(`${gateway.url}${path}`);
    return { status: response.status, body: await readJson(response) };
  };

  it('is live and ready when both dependencies answer', async () => {
    expect(await probe('/health/live')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await probe('/health/ready')).toEqual({
      status: 200,
      body: expect.objectContaining({ status: 'ok', details: { database: { status: 'up', responseTime: expect.any(Number) }, litellm: { status: 'up', responseTime: expect.any(Number) } } }),
    });
  });

  it.each([
    ['PostgreSQL', 'database', 'litellm'],
    ['LiteLLM', 'litellm', 'database'],
  ] as const)('is not ready while %s is unreachable, names it, stays live, and is ready again when it is back', async (_name, down, up) => {
    const proxy = down === 'database' ? databaseProxy : litellmProxy;
    proxy.cut();

    const ready = await probe('/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.body.error).toHaveProperty(down);
    expect(ready.body.details[up].status).toBe('up');
    expect((await probe('/health/live')).status).toBe(200);

    proxy.restore();
    expect((await probe('/health/ready')).status).toBe(200);
  });

  it('GET /health reports both checks, for dashboards', async () => {
    litellmProxy.cut();
    const health = await probe('/health');
    expect(health.status).toBe(503);
    expect(Object.keys(health.body.details).sort()).toEqual(['database', 'litellm']);
  });

  it('never calls LiteLLM\'s GET /health, which makes paid calls to every model', async () => {
    await probe('/health/ready');
    await probe('/health');
    expect(litellm.output()).not.toMatch(/"GET \/health HTTP/);
    expect(provider.requestsTo('/chat/completions')).toHaveLength(0);
    expect(provider.requestsTo('/embeddings')).toHaveLength(0);
  });

  it('leaves LiteLLM out of readiness when HEALTH_READY_INCLUDE_LITELLM=false', async () => {
    const shared = await startGateway({ HEALTH_READY_INCLUDE_LITELLM: 'false' });
    try {
      litellmProxy.cut();
      const response = await fetch(`${shared.url}/health/ready`);
      expect(response.status).toBe(200);
      expect(Object.keys((await readJson(response)).details)).toEqual(['database']);
    } finally {
      await shared.close();
      delete process.env.HEALTH_READY_INCLUDE_LITELLM;
    }
  });

  it('turns readiness 503 as soon as shutdown begins, while still serving during the drain', async () => {
    const draining = await startGateway({ SHUTDOWN_DRAIN_MS: '1500' });
    const closed = draining.close(); // what SIGTERM starts
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await fetch(`${draining.url}/health/ready`)).status).toBe(503);
      expect((await fetch(`${draining.url}/health/live`)).status).toBe(200);
      expect((await fetch(`${draining.url}/v1/models`)).status).toBe(200);
    } finally {
      await closed;
      process.env.SHUTDOWN_DRAIN_MS = '0';
    }
  });
});
