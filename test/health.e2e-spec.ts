import { createServer, Server, Socket } from 'node:net';
import { join } from 'node:path';
import { createTestDatabase, TestDatabase, testDatabaseAddress } from './support/database';
import { FakeUpstream } from './support/fake-upstream';
import { readJson, RunningGateway, startGateway } from './support/gateway';
import { freePort, RunningLiteLLM, startLiteLLM } from './support/litellm';
import { TcpProxy } from './support/tcp-proxy';

/** How long a LiteLLM result may be reused (LITELLM_CHECK_CACHE_MS), plus a margin. */
const CACHE_WINDOW_MS = 2_000 + 1_500;

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
  let mainEnvironment: Record<string, string>;

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
    mainEnvironment = {
      LITELLM_URL: `http://127.0.0.1:${litellmProxy.port}`,
      LITELLM_API_KEY: litellm.masterKey,
      DATABASE_URL: database.urlVia(databaseProxy.port),
      HEALTH_CHECK_TIMEOUT_MS: '1000',
    };
    gateway = await startGateway(mainEnvironment);
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

  const probe = async (path: string, url = gateway.url) => {
    const response = await fetch(`${url}${path}`);
    return { status: response.status, body: await readJson(response) };
  };

  /** Probes until the answer has `status` (LiteLLM's result may be reused for a moment); returns that answer. */
  const eventually = async (path: string, status: number, url = gateway.url) => {
    const deadline = Date.now() + CACHE_WINDOW_MS;
    for (;;) {
      const answer = await probe(path, url);
      if (answer.status === status || Date.now() > deadline) return answer;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  /** Another gateway on the same database; the main one's settings are put back afterwards (startGateway sets process.env). */
  const withGateway = async (env: Record<string, string>, use: (other: RunningGateway) => Promise<void>) => {
    const other = await startGateway(env);
    try {
      await use(other);
    } finally {
      await other.close();
      for (const key of Object.keys(env)) {
        if (key in mainEnvironment) process.env[key] = mainEnvironment[key];
        else delete process.env[key];
      }
    }
  };

  const modelListCalls = () => litellm.output().match(/"GET \/v1\/models HTTP/g)?.length ?? 0;

  it('is live and ready when both dependencies answer, LiteLLM having listed its models to the gateway\'s key', async () => {
    expect(await probe('/health/live')).toMatchObject({ status: 200, body: { status: 'ok' } });
    const ready = await probe('/health/ready');
    expect(ready).toEqual({
      status: 200,
      body: expect.objectContaining({
        status: 'ok',
        details: {
          database: { status: 'up', responseTime: expect.any(Number) },
          litellm: expect.objectContaining({ status: 'up', url: mainEnvironment.LITELLM_URL, models: 3, responseTime: expect.any(Number) }),
        },
      }),
    });
    expect(litellm.output()).toMatch(/"GET \/v1\/models HTTP\/1.1" 200/);
  });

  it.each([
    ['PostgreSQL', 'database', 'litellm'],
    ['LiteLLM', 'litellm', 'database'],
  ] as const)('is not ready while %s is unreachable, names it, stays live, and is ready again when it is back', async (_name, down, up) => {
    const proxy = down === 'database' ? databaseProxy : litellmProxy;
    proxy.cut();

    const ready = await eventually('/health/ready', 503);
    expect(ready.status).toBe(503);
    expect(ready.body.error).toHaveProperty(down);
    expect(ready.body.details[up].status).toBe('up');
    if (down === 'litellm') {
      // The proxy accepts and drops the connection: LiteLLM's URL and what happened, not "fetch failed".
      expect(ready.body.error.litellm.message).toMatch(
        new RegExp(`^LiteLLM at ${mainEnvironment.LITELLM_URL.replace(/[.]/g, '\\.')} (reset|closed) the connection \\((ECONNRESET|UND_ERR_SOCKET)\\)$`),
      );
    }
    expect((await probe('/health/live')).status).toBe(200);

    proxy.restore();
    expect((await eventually('/health/ready', 200)).status).toBe(200);
  });

  it('GET /health reports both checks, for dashboards', async () => {
    litellmProxy.cut();
    const health = await eventually('/health', 503);
    expect(health.status).toBe(503);
    expect(Object.keys(health.body.details).sort()).toEqual(['database', 'litellm']);
  });

  it("names a wrong LITELLM_API_KEY: not ready, while every call would fail", async () => {
    await withGateway({ LITELLM_API_KEY: 'sk-not-the-master-key' }, async (wrongKey) => {
      const ready = await probe('/health/ready', wrongKey.url);
      expect(ready.status).toBe(503);
      // The real LiteLLM without a database answers an unknown key with 400 no_db_connection, not 401.
      expect(ready.body.error.litellm.message).toBe(
        "LiteLLM refused the gateway's key (400 no_db_connection: without a database LiteLLM accepts only its master key): check LITELLM_API_KEY",
      );
      expect(ready.body.details.database.status).toBe('up');
      expect(JSON.stringify(ready.body)).not.toContain('sk-not-the-master-key');
    });
  });

  it("names a key refused with 401 or 403, as a LiteLLM with a database answers", async () => {
    await withGateway({ LITELLM_URL: provider.url, LITELLM_API_KEY: 'sk-revoked-virtual-key' }, async (revoked) => {
      provider.respondNext({ path: '/models', status: 401, body: { error: { message: 'Authentication Error, Invalid proxy server token passed. Received API Key = sk-...-key' } } });
      const ready = await probe('/health/ready', revoked.url);
      expect(ready.status).toBe(503);
      expect(ready.body.error.litellm.message).toBe("LiteLLM refused the gateway's key (401): check LITELLM_API_KEY");
      expect(provider.requestsTo('/v1/models').at(-1)?.headers.authorization).toBe('Bearer sk-revoked-virtual-key');
    });
  });

  it('names a LiteLLM that refuses connections, and one that does not answer in time, with its URL', async () => {
    const nothing = `http://127.0.0.1:${await freePort()}`;
    await withGateway({ LITELLM_URL: nothing }, async (refused) => {
      const ready = await probe('/health/ready', refused.url);
      expect(ready.status).toBe(503);
      expect(ready.body.error.litellm.message).toBe(`LiteLLM at ${nothing} refused the connection (ECONNREFUSED)`);
    });

    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => sockets.add(socket)); // accepts, never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentUrl = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
    try {
      await withGateway({ LITELLM_URL: silentUrl, HEALTH_CHECK_TIMEOUT_MS: '300' }, async (hanging) => {
        const started = Date.now();
        const ready = await probe('/health/ready', hanging.url);
        expect(ready.status).toBe(503);
        expect(ready.body.error.litellm.message).toBe(`LiteLLM at ${silentUrl} did not answer within 300 ms (HEALTH_CHECK_TIMEOUT_MS)`);
        expect(Date.now() - started).toBeLessThan(2_000);
      });
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('asks LiteLLM once for a burst of probes, and reuses the answer for a moment', async () => {
    await new Promise((resolve) => setTimeout(resolve, CACHE_WINDOW_MS)); // nothing cached from earlier tests
    const before = modelListCalls();
    const answers = await Promise.all(Array.from({ length: 20 }, (_, index) => probe(index % 2 ? '/health/ready' : '/health')));
    expect(answers.map((answer) => answer.status)).toEqual(Array(20).fill(200));
    expect((await probe('/health/ready')).body.details.litellm.cachedResponse).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 300)); // LiteLLM's access log line
    expect(modelListCalls() - before).toBe(1);
  });

  it('never calls LiteLLM\'s GET /health, which makes paid calls to every model, nor any model', async () => {
    await probe('/health/ready');
    await probe('/health');
    expect(litellm.output()).not.toMatch(/"GET \/health HTTP/);
    expect(provider.requestsTo('/chat/completions')).toHaveLength(0);
    expect(provider.requestsTo('/embeddings')).toHaveLength(0);
  });

  it('leaves LiteLLM out of readiness when HEALTH_READY_INCLUDE_LITELLM=false', async () => {
    await withGateway({ HEALTH_READY_INCLUDE_LITELLM: 'false' }, async (shared) => {
      litellmProxy.cut();
      const response = await fetch(`${shared.url}/health/ready`);
      expect(response.status).toBe(200);
      expect(Object.keys((await readJson(response)).details)).toEqual(['database']);
    });
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
