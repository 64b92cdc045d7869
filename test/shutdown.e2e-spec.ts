import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { createTestDatabase, TestDatabase } from './support/database';
import { FakeUpstream } from './support/fake-upstream';
import { parseEventStream } from './support/gateway';
import { freePort, PROJECT_ROOT } from './support/litellm';

/**
 * SIGTERM to the production build (`node dist/src/main.js`, built by `npm test` first), as Kubernetes
 * sends it: readiness fails at once, the gateway keeps serving while the "load balancer" (this test)
 * notices, in-flight requests finish, open streams end with an error event, and the process exits 0.
 */
const CALLER_KEY = 'shutdown-test-key-0123456789';

describe('graceful shutdown (production build, real PostgreSQL)', () => {
  const upstream = new FakeUpstream();
  let database: TestDatabase;
  let gateway: ChildProcess;
  let baseUrl: string;
  let output = '';

  beforeAll(async () => {
    await upstream.start();
    database = await createTestDatabase();
    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    gateway = spawn(process.execPath, [join(PROJECT_ROOT, 'dist', 'src', 'main.js')], {
      env: {
        PATH: process.env.PATH,
        NODE_ENV: 'production',
        PORT: String(port),
        HOST: '127.0.0.1',
        LITELLM_URL: upstream.url,
        LITELLM_API_KEY: 'sk-test',
        GATEWAY_API_KEYS: CALLER_KEY,
        DATABASE_URL: database.url,
        LOG_LEVEL: 'info',
        SHUTDOWN_DRAIN_MS: '1500',
        SHUTDOWN_STREAM_TIMEOUT_MS: '1000',
        SWAGGER_ENABLED: 'true',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    gateway.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    gateway.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitUntil(async () => (await call('GET', '/health/live')).status === 200, 20_000, () => output);
  }, 60_000);

  afterAll(async () => {
    if (gateway && gateway.exitCode === null) gateway.kill('SIGKILL');
    await database?.drop();
    await upstream.stop();
  });

  function call(method: string, path: string, body?: object): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      // A connection per request, as from many callers: after the server stops listening, a new call is
      // refused outright (ECONNREFUSED) rather than sent on a connection that is closing.
      const headers = { 'content-type': 'application/json', authorization: `Bearer ${CALLER_KEY}` };
      const req = request(`${baseUrl}${path}`, { method, agent: false, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body ? JSON.stringify(body) : undefined);
    });
  }

  it('serves the committed openapi.json: the production build and the tests generate the same document', async () => {
    const served = await call('GET', '/docs-json');
    expect(JSON.parse(served.text)).toEqual(JSON.parse(readFileSync(join(PROJECT_ROOT, 'openapi.json'), 'utf8')));
  });

  it('serves every accepted request through a SIGTERM under load, ends open streams, and exits 0', async () => {
    upstream.respondNext({ stallAfterChunks: 1 }); // the stream below: one delta, then silence
    const openStream = call('POST', '/v1/chat', { messages: [{ role: 'user', content: 'stream me' }], stream: true });
    await waitUntil(async () => upstream.requestsTo('/chat/completions').length === 1, 5_000);

    // Load: 8 callers in a loop, while a poller plays the load balancer and stops routing on readiness 503.
    let routing = true;
    const results = { ok: 0, failed: [] as string[] };
    let readyFailedAt = 0;
    let sigtermAt = 0;
    const caller = async () => {
      while (routing) {
        try {
          const response = await call('POST', '/v1/chat', { messages: [{ role: 'user', content: 'under load' }] });
          if (response.status === 200) results.ok += 1;
          else results.failed.push(`HTTP ${response.status}: ${response.text.slice(0, 200)}`);
        } catch (error) {
          results.failed.push(String(error));
        }
      }
    };
    const balancer = async () => {
      while (routing) {
        const ready = await call('GET', '/health/ready').catch(() => ({ status: 0 }));
        if (sigtermAt && ready.status !== 200) {
          readyFailedAt = Date.now();
          routing = false;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    const load = Promise.all([...Array.from({ length: 8 }, caller), balancer()]);

    await new Promise((resolve) => setTimeout(resolve, 700));
    const servedBeforeSigterm = results.ok;
    const exited = new Promise<number | null>((resolve) => gateway.once('exit', (code) => resolve(code)));
    sigtermAt = Date.now();
    gateway.kill('SIGTERM');

    // During the drain, after readiness failed, the gateway still answers.
    await waitUntil(async () => readyFailedAt > 0, 3_000);
    await load;
    expect(readyFailedAt - sigtermAt).toBeLessThan(500);
    const duringDrain = await call('POST', '/v1/chat', { messages: [{ role: 'user', content: 'late but in the drain' }] });
    expect(duringDrain.status).toBe(200);

    const stream = parseEventStream((await openStream).text);
    expect(JSON.parse(stream[0].data)).toHaveProperty('content');
    expect(stream[stream.length - 1].event).toBe('error');
    expect(JSON.parse(stream[stream.length - 1].data)).toMatchObject({ statusCode: 503, code: 'SHUTTING_DOWN' });

    expect(await exited).toBe(0);
    expect(results.failed).toEqual([]);
    expect(servedBeforeSigterm).toBeGreaterThan(0);
    expect(results.ok).toBeGreaterThan(servedBeforeSigterm);
    // After the drain the port is closed: new callers are refused, not half-served.
    await expect(call('GET', '/health/live')).rejects.toThrow(/ECONNREFUSED/);
  }, 30_000);
});

async function waitUntil(condition: () => Promise<boolean>, timeoutMs: number, context: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`condition not met within ${timeoutMs} ms\n${context().slice(-3000)}`);
}
