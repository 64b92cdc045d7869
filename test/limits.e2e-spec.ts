import { ChildProcess, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createConnection, createServer, Server, Socket } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { LimitsUnavailableError } from '../src/limits/limits.errors';
import type { OrganizationLimits } from '../src/limits/limits.types';
import { RedisLimitsStore } from '../src/limits/redis-limits.store';
import { MetricsService } from '../src/metrics/metrics.service';
import { freePort, PROJECT_ROOT } from './support/litellm';
import { TcpProxy } from './support/tcp-proxy';

/**
 * The limits against the real Redis (TEST_REDIS_URL, default 127.0.0.1:6379), under a key prefix of this run:
 * exact across two processes (two "replicas", each its own connection and memory), and failing fast, then
 * recovering, when Redis goes away.
 */
const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const WORKER = join(PROJECT_ROOT, 'test', 'support', 'limits-worker.js');
const unlimited: OrganizationLimits = { requestsPerMinute: null, tokensPerMinute: null, concurrentRequests: null, tokenBudget: null, budgetPeriod: 'day' };

interface CallSpec {
  organization: { id: string; limits: OrganizationLimits };
  estimatedTokens: number;
  now: number;
  startAfterMs?: number;
  /** null: kept open until finishOpen. */
  finishAfterMs: number | null;
}
interface CallResult {
  admitted: boolean;
  code?: string;
  estimatedTokens: number;
}

class Worker {
  private constructor(private readonly child: ChildProcess) {}

  static async start(keyPrefix: string): Promise<Worker> {
    const child = fork(WORKER, [], { env: { PATH: process.env.PATH, REDIS_URL: TEST_REDIS_URL, KEY_PREFIX: keyPrefix }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const worker = new Worker(child);
    await worker.next('ready');
    return worker;
  }

  async run(calls: CallSpec[]): Promise<CallResult[]> {
    this.child.send({ type: 'run', calls });
    return ((await this.next('ran')) as { results: CallResult[] }).results;
  }

  async finishOpen(): Promise<void> {
    this.child.send({ type: 'finishOpen' });
    await this.next('finished');
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.child.send({ type: 'exit' });
    await once(this.child, 'exit');
  }

  private async next(type: string): Promise<unknown> {
    for (;;) {
      const [message] = (await Promise.race([once(this.child, 'message'), once(this.child, 'exit').then(() => Promise.reject(new Error('the worker exited')))])) as [{ type: string }];
      if (message.type === type) return message;
    }
  }
}

/** Two workers at once, each with its share of the calls; all results. */
async function runOnBoth(workers: Worker[], calls: (worker: number) => CallSpec[]): Promise<CallResult[]> {
  return (await Promise.all(workers.map((worker, index) => worker.run(calls(index))))).flat();
}

/** The middle of the current minute: a burst stays inside one window however slow the machine. */
const midMinute = () => Math.floor(Date.now() / 60_000) * 60_000 + 30_000;

describe('limits on Redis', () => {
  const keyPrefix = `llm-gateway-test:${randomUUID()}:`;
  let admin: Redis;

  beforeAll(async () => {
    admin = new Redis(TEST_REDIS_URL);
  });
  afterAll(async () => {
    const keys = await admin.keys(`${keyPrefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    await admin.quit();
  });

  describe('exact across two processes', () => {
    let workers: Worker[];

    beforeAll(async () => {
      if (!existsSync(join(PROJECT_ROOT, 'dist', 'src', 'limits', 'redis-limits.store.js'))) {
        throw new Error('dist/ has no limits store: run `npx nest build` first (npm test does)');
      }
      workers = await Promise.all([Worker.start(keyPrefix), Worker.start(keyPrefix)]);
    });
    afterAll(async () => {
      await Promise.all(workers.map((worker) => worker.stop()));
    });

    it('admits exactly 100 of 300 concurrent calls against requestsPerMinute 100', async () => {
      const organization = { id: randomUUID(), limits: { ...unlimited, requestsPerMinute: 100 } };
      const now = midMinute();
      const results = await runOnBoth(workers, () => Array.from({ length: 150 }, () => ({ organization, estimatedTokens: 10, now, finishAfterMs: 0 })));

      expect(results.filter((result) => result.admitted)).toHaveLength(100);
      expect(results.filter((result) => !result.admitted).map((result) => result.code)).toEqual(Array(200).fill('RATE_LIMITED'));
      expect(await admin.get(`${keyPrefix}o:${organization.id}:rpm:${Math.floor(now / 60_000)}`)).toBe('100');
    });

    it('admits exactly 5 of 50 concurrent calls against concurrentRequests 5, and 5 more once they finish', async () => {
      const organization = { id: randomUUID(), limits: { ...unlimited, concurrentRequests: 5 } };
      const calls = () => Array.from({ length: 25 }, () => ({ organization, estimatedTokens: 10, now: Date.now(), finishAfterMs: null }));

      const first = await runOnBoth(workers, calls);
      expect(first.filter((result) => result.admitted)).toHaveLength(5);
      expect(first.filter((result) => !result.admitted).map((result) => result.code)).toEqual(Array(45).fill('CONCURRENCY_LIMITED'));

      expect((await runOnBoth(workers, calls)).filter((result) => result.admitted)).toHaveLength(0);
      await Promise.all(workers.map((worker) => worker.finishOpen()));
      expect((await runOnBoth(workers, calls)).filter((result) => result.admitted)).toHaveLength(5);
      await Promise.all(workers.map((worker) => worker.finishOpen()));
      expect(await admin.zcard(`${keyPrefix}o:${organization.id}:calls`)).toBe(0);
    });

    it('never admits more than a budget of 10,000 tokens, with calls of known size coming and going on both', async () => {
      const organization = { id: randomUUID(), limits: { ...unlimited, tokenBudget: 10_000 } };
      const sizes = [100, 250, 400, 700];
      const now = Date.now();
      // 80 calls asking for 29,000 tokens in all, starting and finishing at staggered times over ~60 ms.
      const results = await runOnBoth(workers, (worker) =>
        Array.from({ length: 40 }, (_, i) => ({ organization, estimatedTokens: sizes[(i + worker) % 4], now, startAfterMs: (i * 7) % 40, finishAfterMs: (i * 3) % 20 })),
      );

      const admittedTokens = results.filter((result) => result.admitted).reduce((sum, result) => sum + result.estimatedTokens, 0);
      expect(admittedTokens).toBeLessThanOrEqual(10_000);
      // Each refusal saw less than its own size left, and what is used only grows: the budget was filled, not shunned.
      expect(admittedTokens).toBeGreaterThan(10_000 - Math.max(...sizes));
      expect(new Set(results.filter((result) => !result.admitted).map((result) => result.code))).toEqual(new Set(['BUDGET_EXHAUSTED']));
      const period = new Date(now).toISOString().slice(0, 10);
      expect(await admin.hgetall(`${keyPrefix}o:${organization.id}:budget:day:${period}`)).toEqual({ used: String(admittedTokens), reserved: '0' });
    });
  });

  it('keeps no key longer than it can matter: a minute past its window, a day past its budget period', async () => {
    const store = new RedisLimitsStore(new MetricsService(), { url: TEST_REDIS_URL, keyPrefix, leaseMs: 60_000 });
    await store.onModuleInit();
    const organization = { id: randomUUID(), limits: { ...unlimited, requestsPerMinute: 10, tokensPerMinute: 1_000, tokenBudget: 10_000 }, loadPeriodUsage: async () => 0 };
    const now = Date.now();
    const admission = await store.admit({ organization, estimatedTokens: 100, now });
    const window = Math.floor(now / 60_000);
    const dayEnd = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), new Date(now).getUTCDate() + 1);
    const ttl = (key: string) => admin.pttl(`${keyPrefix}o:${organization.id}:${key}`);

    for (const counter of ['rpm', 'tpm']) {
      expect(await ttl(`${counter}:${window}`)).toBeGreaterThan(60_000 - 5_000);
      expect(await ttl(`${counter}:${window}`)).toBeLessThanOrEqual(120_000);
    }
    const budgetTtl = await ttl(`budget:day:${new Date(now).toISOString().slice(0, 10)}`);
    expect(Math.abs(budgetTtl - (dayEnd - now + 86_400_000))).toBeLessThan(5_000);
    // The open calls last as long as the budget, so that a dead call's reservation is always charged in the end.
    expect(await ttl('calls')).toBeGreaterThanOrEqual(budgetTtl - 5_000);

    await store.finish(admission.admitted ? admission.reservation : null, 50);
    expect(await ttl('calls')).toBe(-2);
    await store.onApplicationShutdown();
  });

  describe('when Redis goes away', () => {
    const stores: RedisLimitsStore[] = [];
    const storeAt = async (url: string, metrics = new MetricsService()) => {
      const store = new RedisLimitsStore(metrics, { url, keyPrefix, leaseMs: 60_000 });
      stores.push(store);
      await store.onModuleInit();
      return store;
    };
    const admitOne = (store: RedisLimitsStore, organizationId = randomUUID()) =>
      store.admit({ organization: { id: organizationId, limits: { ...unlimited, concurrentRequests: 10 }, loadPeriodUsage: async () => 0 }, estimatedTokens: 10 });
    /** How long a call took to fail, and with what. */
    const failure = async (work: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> => {
      const started = performance.now();
      const error = await work().then(() => undefined, (reason: unknown) => reason);
      return { error, ms: performance.now() - started };
    };

    afterAll(async () => {
      await Promise.all(stores.map((store) => store.onApplicationShutdown()));
    });

    it('fails at once with LimitsUnavailableError where nothing listens', async () => {
      const store = await storeAt(`redis://127.0.0.1:${await freePort()}`);
      const outcome = await failure(() => admitOne(store));
      expect(outcome.error).toBeInstanceOf(LimitsUnavailableError);
      expect(outcome.ms).toBeLessThan(1_000);
    });

    it('fails fast while the connection is cut, never throws from finish(), and recovers by itself', async () => {
      const proxy = await new TcpProxy('127.0.0.1', Number(new URL(TEST_REDIS_URL).port || 6379)).start();
      const metrics = new MetricsService();
      const store = await storeAt(`redis://127.0.0.1:${proxy.port}`, metrics);
      const organizationId = randomUUID();
      const admission = await admitOne(store, organizationId);
      expect(admission.admitted).toBe(true);

      proxy.cut();
      const refused = await failure(() => admitOne(store, organizationId));
      expect(refused.error).toBeInstanceOf(LimitsUnavailableError);
      expect(refused.ms).toBeLessThan(1_000);
      await expect(store.ping()).rejects.toBeInstanceOf(LimitsUnavailableError);
      await expect(store.finish(admission.admitted ? admission.reservation : null, 10)).resolves.toBeUndefined();
      expect((await metrics.limitsFinishFailures.get()).values[0].value).toBe(1);
      expect((await metrics.limitsAdmissions.get()).values).toContainEqual(expect.objectContaining({ labels: { outcome: 'LIMITS_UNAVAILABLE' }, value: 1 }));

      proxy.restore();
      const deadline = Date.now() + 5_000;
      let recovered = await admitOne(store, organizationId).catch(() => undefined);
      while (!recovered && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        recovered = await admitOne(store, organizationId).catch(() => undefined);
      }
      expect(recovered?.admitted).toBe(true);
      await proxy.stop();
    });

    it('times a command out in well under a second when Redis stops answering on an open connection', async () => {
      const proxy = await FreezableProxy.start(Number(new URL(TEST_REDIS_URL).port || 6379));
      const store = await storeAt(`redis://127.0.0.1:${proxy.port}`);
      expect((await admitOne(store)).admitted).toBe(true);

      proxy.freeze();
      const outcome = await failure(() => admitOne(store));
      expect(outcome.error).toBeInstanceOf(LimitsUnavailableError);
      expect((outcome.error as Error).message).toMatch(/timed out/);
      expect(outcome.ms).toBeLessThan(1_000);
      await proxy.stop();
    });
  });
});

/** Forwards to Redis until frozen; then swallows what the client sends, as a network that drops packets would. */
class FreezableProxy {
  private frozen = false;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server) {}

  static async start(targetPort: number): Promise<FreezableProxy> {
    const proxy: FreezableProxy = new FreezableProxy(
      createServer((client) => {
        const upstream = createConnection(targetPort, '127.0.0.1');
        for (const socket of [client, upstream]) {
          proxy.sockets.add(socket);
          socket.on('error', () => undefined);
        }
        client.on('data', (data) => proxy.frozen || upstream.write(data));
        upstream.on('data', (data) => proxy.frozen || client.write(data));
      }),
    );
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    return proxy;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  freeze(): void {
    this.frozen = true;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
