import { ConfigModule, ConfigService } from '@nestjs/config';
import { Test, TestingModule } from '@nestjs/testing';
import { createServer, Server, Socket } from 'node:net';
import { validateEnvironment } from '../config/environment';
import { MetricsModule } from '../metrics/metrics.module';
import { LimitsHealthIndicator } from './limits.health';
import { LimitsUnavailableError } from './limits.errors';
import { LimitsModule } from './limits.module';
import { limitsSettings } from './limits.settings';
import { LimitsStore } from './limits.store';
import { MemoryLimitsStore } from './memory-limits.store';
import { RedisLimitsStore } from './redis-limits.store';

const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

async function limitsModule(env: Record<string, string>): Promise<TestingModule> {
  const moduleRef = await Test.createTestingModule({
    imports: [ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true, validate: () => validateEnvironment(env) }), MetricsModule, LimitsModule],
  }).compile();
  return moduleRef.init();
}

describe('LimitsModule', () => {
  it('keeps the limits in memory without REDIS_URL, and is always reachable', async () => {
    const moduleRef = await limitsModule({ HEALTH_CHECK_TIMEOUT_MS: '200' });
    expect(moduleRef.get(LimitsStore)).toBeInstanceOf(MemoryLimitsStore);
    expect(await moduleRef.get(LimitsHealthIndicator).isReachable('limits')).toMatchObject({ limits: { status: 'up' } });
    await moduleRef.close();
  });

  it('shares them through Redis with REDIS_URL, reports a PING, and closes its connection at shutdown', async () => {
    const moduleRef = await limitsModule({ REDIS_URL: TEST_REDIS_URL, LIMITS_SLOT_LEASE_MS: '30000' });
    const store = moduleRef.get(LimitsStore);
    expect(store).toBeInstanceOf(RedisLimitsStore);
    expect(store.leaseMs).toBe(30_000);
    expect(await moduleRef.get(LimitsHealthIndicator).isReachable('limits')).toMatchObject({ limits: { status: 'up' } });
    await moduleRef.close();
    await expect(store.ping()).rejects.toBeInstanceOf(LimitsUnavailableError);
  });

  it('boots while Redis does not answer, and reports it down within HEALTH_CHECK_TIMEOUT_MS', async () => {
    // Accepts connections and never answers: the worst case, no error to notice.
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    const started = Date.now();
    const moduleRef = await limitsModule({ REDIS_URL: `redis://127.0.0.1:${port}`, HEALTH_CHECK_TIMEOUT_MS: '300' });
    expect(await moduleRef.get(LimitsHealthIndicator).isReachable('limits')).toMatchObject({ limits: { status: 'down' } });
    expect(Date.now() - started).toBeLessThan(2_000);
    await moduleRef.close();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  it('reads the LIMITS_* settings, unset limits as unlimited', async () => {
    const settings = (env: Record<string, string>) => limitsSettings(new ConfigService(validateEnvironment(env) as unknown as Record<string, unknown>) as never);
    expect(settings({})).toEqual({
      failMode: 'open',
      keyRequestsPerMinute: null,
      defaultMaxTokens: 4_096,
      organizationDefaults: { requestsPerMinute: null, tokensPerMinute: null, concurrentRequests: null, tokenBudget: null, budgetPeriod: 'month' },
    });
    expect(
      settings({
        LIMITS_FAIL_MODE: 'closed',
        GATEWAY_KEY_REQUESTS_PER_MINUTE: '600',
        LIMITS_DEFAULT_MAX_TOKENS: '1024',
        LIMITS_DEFAULT_REQUESTS_PER_MINUTE: '60',
        LIMITS_DEFAULT_TOKENS_PER_MINUTE: '100000',
        LIMITS_DEFAULT_CONCURRENT_REQUESTS: '4',
        LIMITS_DEFAULT_TOKEN_BUDGET: '1000000',
        LIMITS_DEFAULT_BUDGET_PERIOD: 'day',
      }),
    ).toEqual({
      failMode: 'closed',
      keyRequestsPerMinute: 600,
      defaultMaxTokens: 1_024,
      organizationDefaults: { requestsPerMinute: 60, tokensPerMinute: 100_000, concurrentRequests: 4, tokenBudget: 1_000_000, budgetPeriod: 'day' },
    });
  });
});
