import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { MetricsService } from '../metrics/metrics.service';
import { LimitsUnavailableError } from './limits.errors';
import { LimitsStore } from './limits.store';
import type { Admission, OrganizationLimits, Reservation } from './limits.types';
import { MemoryLimitsStore } from './memory-limits.store';
import { RedisLimitsStore } from './redis-limits.store';

/**
 * One table of cases, run against both stores: the Lua scripts and the in-memory code must agree on every one.
 * The Redis store uses the real Redis (TEST_REDIS_URL, default 127.0.0.1:6379) under a key prefix of its own.
 */
const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const LEASE_MS = 60_000;
/** 10 s into a minute, on the last day of a month. */
const T0 = Date.UTC(2026, 2, 31, 12, 0, 10);

interface Harness {
  store: LimitsStore;
  metrics: MetricsService;
  /** The store loses its state: Redis flushed (the test's keys deleted), or the process restarted. */
  loseState(): Promise<void>;
  close(): Promise<void>;
}

async function memoryHarness(): Promise<Harness> {
  const metrics = new MetricsService();
  const harness: Harness = {
    store: new MemoryLimitsStore(metrics, LEASE_MS),
    metrics,
    async loseState() {
      harness.store = new MemoryLimitsStore(metrics, LEASE_MS);
    },
    async close() {},
  };
  return harness;
}

async function redisHarness(): Promise<Harness> {
  const metrics = new MetricsService();
  const keyPrefix = `llm-gateway-test:${randomUUID()}:`;
  const store = new RedisLimitsStore(metrics, { url: TEST_REDIS_URL, leaseMs: LEASE_MS, keyPrefix });
  const admin = new Redis(TEST_REDIS_URL);
  await store.onModuleInit();
  const deleteKeys = async () => {
    const keys = await admin.keys(`${keyPrefix}*`);
    if (keys.length > 0) await admin.del(...keys);
  };
  return {
    store,
    metrics,
    loseState: deleteKeys,
    async close() {
      await deleteKeys();
      await admin.quit();
      await store.onApplicationShutdown();
    },
  };
}

const unlimited: OrganizationLimits = { requestsPerMinute: null, tokensPerMinute: null, concurrentRequests: null, tokenBudget: null, budgetPeriod: 'day' };

function reservationOf(admission: Admission): Reservation {
  if (!admission.admitted || !admission.reservation) throw new Error(`expected a reservation, got ${JSON.stringify(admission)}`);
  return admission.reservation;
}

/** The scripts the Redis store has sent (round trips), as its metric counts them. */
async function batchesSent(metrics: MetricsService): Promise<number> {
  return (
    (await metrics.limitsRedisDuration.get()).values.find(
      ({ metricName, labels }) => metricName === 'limits_redis_duration_seconds_count' && labels.operation === 'batch',
    )?.value ?? 0
  );
}

describe.each([
  ['MemoryLimitsStore', memoryHarness],
  ['RedisLimitsStore', redisHarness],
])('%s', (_name, createHarness) => {
  let harness: Harness;
  let organizationId: string;
  let ledger: jest.Mock<Promise<number>, [{ startsAt: Date; endsAt: Date }]>;

  beforeAll(async () => {
    harness = await createHarness();
  });
  afterAll(async () => {
    await harness.close();
  });
  beforeEach(() => {
    organizationId = randomUUID();
    ledger = jest.fn(async (_period: { startsAt: Date; endsAt: Date }) => 0);
  });

  function admit(limits: Partial<OrganizationLimits>, options: { tokens?: number; now?: number; key?: { id: string; requestsPerMinute: number | null } } = {}) {
    return harness.store.admit({
      organization: { id: organizationId, limits: { ...unlimited, ...limits }, loadPeriodUsage: ledger },
      callerKey: options.key,
      estimatedTokens: options.tokens ?? 100,
      now: options.now ?? T0,
    });
  }
  const usage = (limits: Partial<OrganizationLimits>, now = T0) =>
    harness.store.usage({ organizationId, limits: { ...unlimited, ...limits }, loadPeriodUsage: ledger, now });
  const admittedCount = async (admissions: Promise<Admission>[]) => (await Promise.all(admissions)).filter((admission) => admission.admitted).length;

  it('admits a call no limit applies to without counting anything', async () => {
    await expect(admit({})).resolves.toEqual({ admitted: true, reservation: null, rateLimits: {} });
    await expect(harness.store.admit({ estimatedTokens: 10 })).resolves.toMatchObject({ admitted: true, reservation: null });
  });

  it('admits requestsPerMinute calls in a minute, refuses the next until the minute turns, and says so in the headers', async () => {
    const limits = { requestsPerMinute: 3 };
    const remaining = [];
    for (let i = 0; i < 3; i++) {
      const admission = await admit(limits);
      expect(admission).toMatchObject({ admitted: true, reservation: null });
      remaining.push(admission.rateLimits.requests!.remaining);
    }
    expect(remaining).toEqual([2, 1, 0]);

    const refused = await admit(limits, { now: T0 + 49_000 });
    expect(refused).toEqual({
      admitted: false,
      refusal: { code: 'RATE_LIMITED', limit: 'requestsPerMinute', retryAfterSeconds: 1, message: "The organization's limit of 3 requests per minute is reached" },
      rateLimits: { requests: { limit: 3, remaining: 0, resetMs: 1_000 } },
    });
    expect(await admit(limits)).toMatchObject({ admitted: false, refusal: { retryAfterSeconds: 50 } });

    // The next minute is a new window.
    expect(await admit(limits, { now: T0 + 50_000 })).toMatchObject({ admitted: true, rateLimits: { requests: { remaining: 2, resetMs: 60_000 } } });
  });

  it('admits exactly requestsPerMinute of a burst', async () => {
    expect(await admittedCount(Array.from({ length: 30 }, () => admit({ requestsPerMinute: 10 })))).toBe(10);
  });

  it('checks admissions made together each on its own and in order, however many (Redis: a few scripts for all)', async () => {
    const limits = { requestsPerMinute: 400, tokensPerMinute: 1_000_000, concurrentRequests: 1_000 };
    const before = await batchesSent(harness.metrics);

    const admissions = await Promise.all(Array.from({ length: 600 }, () => admit(limits, { tokens: 10 })));

    expect(admissions.map((admission) => admission.admitted && admission.rateLimits.requests?.remaining)).toEqual([
      ...Array.from({ length: 400 }, (_, index) => 399 - index),
      ...Array.from({ length: 200 }, () => false),
    ]);
    expect(await usage(limits)).toMatchObject({ requestsPerMinute: { used: 400 }, tokensPerMinute: { used: 4_000 }, concurrentRequests: { used: 400 } });
    // The first at once, the 599 made while it was out together when its reply came, in scripts of at most 256.
    expect((await batchesSent(harness.metrics)) - before).toBe(harness.store instanceof RedisLimitsStore ? 4 : 0);
  });

  it("limits each caller key's requests per minute, and reports the tighter of the key's and the organization's", async () => {
    const key = { id: randomUUID().slice(0, 8), requestsPerMinute: 2 };
    expect(await admit({ requestsPerMinute: 10 }, { key })).toMatchObject({ admitted: true, rateLimits: { requests: { limit: 2, remaining: 1 } } });
    await admit({ requestsPerMinute: 10 }, { key });
    expect(await admit({ requestsPerMinute: 10 }, { key })).toMatchObject({
      admitted: false,
      refusal: { code: 'RATE_LIMITED', limit: 'keyRequestsPerMinute', message: "This API key's limit of 2 requests per minute is reached" },
    });
    // Another key, and a call without one, are not held back by it; the refused call took nothing from the organization.
    expect(await admit({ requestsPerMinute: 10 }, { key: { id: 'another', requestsPerMinute: 100 } })).toMatchObject({
      admitted: true,
      rateLimits: { requests: { limit: 10, remaining: 7 } },
    });
    expect(await harness.store.admit({ callerKey: { ...key, id: 'no-organization' }, estimatedTokens: 1, now: T0 })).toMatchObject({ admitted: true });
  });

  it('reserves the token estimate in the minute, up to tokensPerMinute exactly', async () => {
    const limits = { tokensPerMinute: 1_000 };
    expect(await admit(limits, { tokens: 400 })).toMatchObject({ admitted: true, rateLimits: { tokens: { limit: 1_000, remaining: 600 } } });
    await admit(limits, { tokens: 400 });
    expect(await admit(limits, { tokens: 400 })).toMatchObject({
      admitted: false,
      refusal: { code: 'RATE_LIMITED', limit: 'tokensPerMinute', retryAfterSeconds: 50, message: "The organization's limit of 1000 tokens per minute is reached (800 used, this call needs 400)" },
      rateLimits: { tokens: { remaining: 200 } },
    });
    expect(await admit(limits, { tokens: 200 })).toMatchObject({ admitted: true, rateLimits: { tokens: { remaining: 0 } } });
  });

  it('refuses an estimate larger than the whole tokensPerMinute, in every minute, naming it', async () => {
    for (const now of [T0, T0 + 60_000]) {
      expect(await admit({ tokensPerMinute: 1_000 }, { tokens: 1_001, now })).toMatchObject({
        admitted: false,
        refusal: {
          code: 'RATE_LIMITED',
          limit: 'tokensPerMinute',
          message: "This call's estimated 1001 tokens exceed the organization's whole limit of 1000 tokens per minute: lower maxTokens or shorten the prompt",
        },
      });
    }
  });

  it('reconciles the minute and the budget with the tokens used, down and up', async () => {
    const limits = { tokensPerMinute: 1_000, tokenBudget: 10_000 };
    await harness.store.finish(reservationOf(await admit(limits, { tokens: 600 })), 100);
    expect(await usage(limits)).toMatchObject({ tokensPerMinute: { used: 100, remaining: 900 }, tokenBudget: { used: 100, reserved: 0, remaining: 9_900 } });
    expect(await admit(limits, { tokens: 900 })).toMatchObject({ admitted: true });

    const secondMinute = T0 + 50_000;
    await harness.store.finish(reservationOf(await admit(limits, { tokens: 100, now: secondMinute })), 700);
    expect(await usage(limits, secondMinute)).toMatchObject({ tokensPerMinute: { used: 700 }, tokenBudget: { used: 100 + 900 + 700, reserved: 900 } });
  });

  it('holds a slot per call in flight up to concurrentRequests, and frees it when the call finishes', async () => {
    const limits = { concurrentRequests: 2 };
    const first = reservationOf(await admit(limits));
    await admit(limits);
    expect(await admit(limits)).toEqual({
      admitted: false,
      refusal: { code: 'CONCURRENCY_LIMITED', limit: 'concurrentRequests', retryAfterSeconds: 1, message: "The organization's 2 concurrent requests are all in flight" },
      rateLimits: {},
    });
    expect(await usage(limits)).toMatchObject({ concurrentRequests: { limit: 2, used: 2, remaining: 0, resetsAt: null } });
    await harness.store.finish(first, 50);
    expect(await admit(limits)).toMatchObject({ admitted: true });
    expect(await admit(limits)).toMatchObject({ admitted: false });
  });

  it("admits within the budget: the ledger's period usage plus open reservations plus the estimate", async () => {
    const limits = { tokenBudget: 1_000, budgetPeriod: 'day' as const };
    ledger.mockResolvedValue(300);
    const first = reservationOf(await admit(limits, { tokens: 500 }));
    expect(ledger).toHaveBeenCalledTimes(1);
    expect(ledger).toHaveBeenCalledWith({ startsAt: new Date('2026-03-31T00:00:00Z'), endsAt: new Date('2026-04-01T00:00:00Z') });

    const secondsToMidnight = (Date.UTC(2026, 3, 1) - T0) / 1000;
    expect(await admit(limits, { tokens: 300 })).toMatchObject({
      admitted: false,
      refusal: {
        code: 'BUDGET_EXHAUSTED',
        limit: 'tokenBudget',
        retryAfterSeconds: secondsToMidnight,
        message: "The organization's daily token budget of 1000 is spent (800 used or reserved, this call needs 300) until 2026-04-01T00:00:00.000Z",
      },
    });
    expect(await admit(limits, { tokens: 200 })).toMatchObject({ admitted: true });
    await harness.store.finish(first, 200);
    expect(await admit(limits, { tokens: 300 })).toMatchObject({ admitted: true });
    expect(await usage(limits)).toMatchObject({ tokenBudget: { limit: 1_000, used: 1_000, reserved: 500, remaining: 0, period: 'day', resetsAt: new Date('2026-04-01T00:00:00Z') } });
    expect(ledger).toHaveBeenCalledTimes(1);
  });

  it('reads the ledger once for the calls that find no budget state at the same time', async () => {
    ledger.mockImplementation(() => new Promise((resolve) => setTimeout(() => resolve(100), 50)));
    expect(await admittedCount(Array.from({ length: 10 }, () => admit({ tokenBudget: 1_000 }, { tokens: 100 })))).toBe(9);
    expect(ledger).toHaveBeenCalledTimes(1);
  });

  it('refuses an estimate larger than the whole budget, naming it', async () => {
    expect(await admit({ tokenBudget: 1_000, budgetPeriod: 'month' }, { tokens: 1_001 })).toMatchObject({
      admitted: false,
      refusal: { code: 'BUDGET_EXHAUSTED', message: expect.stringContaining("exceed the organization's whole monthly token budget of 1000") },
    });
  });

  it('reserves nothing when one limit refuses, and names the refusal that lasts longest', async () => {
    const limits = { requestsPerMinute: 1, tokensPerMinute: 1_000, concurrentRequests: 5, tokenBudget: 500 };
    expect(await admit(limits, { tokens: 600 })).toMatchObject({ admitted: false, refusal: { code: 'BUDGET_EXHAUSTED' } });
    expect(await usage(limits)).toMatchObject({
      requestsPerMinute: { used: 0 },
      tokensPerMinute: { used: 0 },
      concurrentRequests: { used: 0 },
      tokenBudget: { used: 0, reserved: 0 },
    });
    await admit(limits, { tokens: 100 });
    // Now the minute's requests and the budget both refuse: the budget's Retry-After (midnight) is the longer.
    expect(await admit(limits, { tokens: 450 })).toMatchObject({ admitted: false, refusal: { code: 'BUDGET_EXHAUSTED' } });
    expect(await admit(limits, { tokens: 10 })).toMatchObject({ admitted: false, refusal: { code: 'RATE_LIMITED', limit: 'requestsPerMinute' } });
    expect(await usage(limits)).toMatchObject({ requestsPerMinute: { used: 1 }, tokensPerMinute: { used: 100 }, concurrentRequests: { used: 1 }, tokenBudget: { used: 100, reserved: 100 } });
  });

  it('rebuilds the budget from the ledger when the store lost its state, and ignores finishes of calls it forgot', async () => {
    const limits = { tokenBudget: 1_000, concurrentRequests: 10 };
    await harness.store.finish(reservationOf(await admit(limits, { tokens: 400 })), 400);
    const open = reservationOf(await admit(limits, { tokens: 100 }));
    expect(ledger).toHaveBeenCalledTimes(1);

    await harness.loseState();
    ledger.mockResolvedValue(400); // what the ledger recorded
    expect(await admit(limits, { tokens: 700 })).toMatchObject({ admitted: false, refusal: { code: 'BUDGET_EXHAUSTED' } });
    expect(ledger).toHaveBeenCalledTimes(2);
    await harness.store.finish(open, 100);
    expect(await usage(limits)).toMatchObject({ tokenBudget: { used: 400, reserved: 0 }, concurrentRequests: { used: 0 } });
    expect(await admit(limits, { tokens: 600 })).toMatchObject({ admitted: true });
    expect(ledger).toHaveBeenCalledTimes(2);
  });

  it.each([
    ['day', Date.UTC(2026, 2, 31, 23, 59, 30), Date.UTC(2026, 3, 1), 30, '2026-04-02T00:00:00Z'],
    ['month', Date.UTC(2026, 1, 28, 23, 0, 0), Date.UTC(2026, 2, 1), 3_600, '2026-04-01T00:00:00Z'],
    ['month', Date.UTC(2026, 11, 31, 23, 59, 59, 500), Date.UTC(2027, 0, 1), 1, '2027-02-01T00:00:00Z'],
  ] as const)('refuses a spent %s budget until the period turns (UTC), then loads the new period', async (budgetPeriod, before, turn, retryAfterSeconds, nextEnd) => {
    const limits = { tokenBudget: 1_000, budgetPeriod };
    ledger.mockResolvedValueOnce(1_000).mockResolvedValueOnce(0);
    expect(await admit(limits, { now: before })).toMatchObject({ admitted: false, refusal: { code: 'BUDGET_EXHAUSTED', retryAfterSeconds } });
    expect(await admit(limits, { now: turn })).toMatchObject({ admitted: true });
    expect(ledger).toHaveBeenLastCalledWith({ startsAt: new Date(turn), endsAt: new Date(nextEnd) });
    expect(await usage(limits, turn)).toMatchObject({ tokenBudget: { used: 100, reserved: 100, resetsAt: new Date(nextEnd) } });
  });

  it("frees the slot of a call whose lease ran out and charges its whole estimate to the budget; a late finish changes nothing", async () => {
    const limits = { concurrentRequests: 1, tokenBudget: 1_000 };
    const lost = reservationOf(await admit(limits, { tokens: 300 }));
    expect(await admit(limits, { now: T0 + LEASE_MS - 1 })).toMatchObject({ admitted: false, refusal: { code: 'CONCURRENCY_LIMITED' } });
    const later = T0 + LEASE_MS;
    expect(await usage(limits, later)).toMatchObject({ concurrentRequests: { used: 0 } });
    expect(await admit(limits, { tokens: 200, now: later })).toMatchObject({ admitted: true });
    expect(await usage(limits, later)).toMatchObject({ concurrentRequests: { used: 1 }, tokenBudget: { used: 500, reserved: 200 } });
    await harness.store.finish(lost, 5);
    expect(await usage(limits, later)).toMatchObject({ concurrentRequests: { used: 1 }, tokenBudget: { used: 500, reserved: 200 } });
  });

  it('releases calls that finish together, each reconciled once, however many (more than one script takes)', async () => {
    const limits = { concurrentRequests: 300, tokensPerMinute: 1_000_000, tokenBudget: 1_000_000 };
    const reservations = [];
    for (let i = 0; i < 300; i += 1) reservations.push(reservationOf(await admit(limits, { tokens: 100 })));

    // In one turn of the event loop, the first call twice.
    await Promise.all([...reservations.map((reservation) => harness.store.finish(reservation, 10)), harness.store.finish(reservations[0], 10)]);

    expect(await usage(limits)).toMatchObject({
      concurrentRequests: { used: 0 },
      tokensPerMinute: { used: 3_000 },
      tokenBudget: { used: 3_000, reserved: 0 },
    });
  });

  it('does nothing on a second finish of the same call', async () => {
    const limits = { concurrentRequests: 1, tokensPerMinute: 1_000, tokenBudget: 1_000 };
    const reservation = reservationOf(await admit(limits, { tokens: 500 }));
    await harness.store.finish(reservation, 200);
    await harness.store.finish(reservation, 200);
    await harness.store.finish(null, 200);
    expect(await usage(limits)).toMatchObject({ tokensPerMinute: { used: 200 }, tokenBudget: { used: 200, reserved: 0 }, concurrentRequests: { used: 0 } });
    expect(await admit(limits)).toMatchObject({ admitted: true });
    expect(await admit(limits)).toMatchObject({ admitted: false, refusal: { code: 'CONCURRENCY_LIMITED' } });
  });

  it('reports each limit: unlimited ones as null, the budget from the ledger while nothing was admitted in the period', async () => {
    ledger.mockResolvedValue(250);
    expect(await usage({ requestsPerMinute: 5, tokenBudget: 1_000, budgetPeriod: 'month' })).toEqual({
      requestsPerMinute: { limit: 5, used: 0, remaining: 5, resetsAt: new Date(T0 - 10_000 + 60_000) },
      tokensPerMinute: { limit: null, used: null, remaining: null, resetsAt: null },
      concurrentRequests: { limit: null, used: null, remaining: null, resetsAt: null },
      tokenBudget: { limit: 1_000, used: 250, reserved: 0, remaining: 750, resetsAt: new Date('2026-04-01T00:00:00Z'), period: 'month' },
    });
  });

  it('throws LimitsUnavailableError when the ledger cannot be read, and counts admissions by outcome', async () => {
    ledger.mockRejectedValue(new Error('database down'));
    await expect(admit({ tokenBudget: 1_000 })).rejects.toBeInstanceOf(LimitsUnavailableError);
    await admit({ requestsPerMinute: 1 });
    await admit({ requestsPerMinute: 1 });
    const counted = Object.fromEntries(
      (await harness.metrics.limitsAdmissions.get()).values.map(({ labels, value }) => [labels.outcome, value]),
    );
    expect(counted).toMatchObject({ LIMITS_UNAVAILABLE: 1, RATE_LIMITED: expect.any(Number), admitted: expect.any(Number) });
  });
});

describe('RedisLimitsStore keys', () => {
  const keyPrefix = `llm-gateway-test:${randomUUID()}:`;
  const admin = new Redis(TEST_REDIS_URL);
  const store = new RedisLimitsStore(new MetricsService(), { url: TEST_REDIS_URL, leaseMs: LEASE_MS, keyPrefix });
  const organizationId = randomUUID();
  const limits: OrganizationLimits = { requestsPerMinute: 100, tokensPerMinute: 100_000, concurrentRequests: 10, tokenBudget: 1_000_000, budgetPeriod: 'month' };
  const admit = () =>
    store.admit({ organization: { id: organizationId, limits, loadPeriodUsage: async () => 0 }, estimatedTokens: 100, now: T0 });
  const ttls = async () => {
    const keys = await admin.keys(`${keyPrefix}*`);
    return Object.fromEntries(await Promise.all(keys.map(async (key) => [key.slice(keyPrefix.length), await admin.pttl(key)] as const)));
  };

  beforeAll(() => store.onModuleInit());
  afterAll(async () => {
    const keys = await admin.keys(`${keyPrefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    await admin.quit();
    await store.onApplicationShutdown();
  });

  it('gives every key it writes an expiry, and writes a TTL only when a key needs one', async () => {
    const first = await admit();
    const before = await ttls();
    // The minute's windows live to its end and a minute more; the open calls and the budget past the month's end.
    const minuteLeft = 60_000 - (T0 % 60_000) + 60_000;
    const monthLeft = Date.UTC(2026, 3, 1) - T0 + 86_400_000;
    const kind = (key: string) => key.replace(organizationId, 'org').replace(/:\d+$/, ':minute');
    expect(Object.keys(before).map(kind).sort()).toEqual(['o:org:budget:month:2026-03', 'o:org:calls', 'o:org:rpm:minute', 'o:org:tpm:minute']);
    for (const [key, ttl] of Object.entries(before)) {
      const needed = kind(key).endsWith(':minute') ? minuteLeft : monthLeft;
      expect([key, ttl >= needed - 1_000 && ttl <= needed + LEASE_MS]).toEqual([key, true]);
    }

    // A later admission in the same minute finds every TTL long enough and leaves them running down.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = await admit();
    const after = await ttls();
    for (const [key, ttl] of Object.entries(before)) expect([key, after[key] <= ttl - 40]).toEqual([key, true]);

    // Releasing the calls leaves no key without an expiry.
    for (const admission of [first, second]) if (admission.admitted && admission.reservation) await store.finish(admission.reservation, 80);
    expect(Object.values(await ttls()).every((ttl) => ttl > 0)).toBe(true);
  });
});

describe('RedisLimitsStore batches (one script in flight at a time, but for a lone release)', () => {
  let harness: Harness;
  let store: RedisLimitsStore;
  const limits: OrganizationLimits = { ...unlimited, concurrentRequests: 1, tokenBudget: 1_000 };
  let organizationId: string;
  const admit = (on: LimitsStore = store) => on.admit({ organization: { id: organizationId, limits, loadPeriodUsage: async () => 0 }, estimatedTokens: 100, now: T0 });
  const usage = () => store.usage({ organizationId, limits, loadPeriodUsage: async () => 0, now: T0 });

  beforeAll(async () => {
    harness = await redisHarness();
    store = harness.store as RedisLimitsStore;
  });
  beforeEach(() => {
    organizationId = randomUUID();
  });
  afterEach(() => jest.restoreAllMocks());
  afterAll(() => harness.close());

  it('sends what comes while a script is out in the next one, releases and admissions in the order they came', async () => {
    const open = reservationOf(await admit());
    const before = await batchesSent(harness.metrics);

    // Out at once: the call above still holds the only slot.
    const first = admit();
    // Both wait for its reply, then go in one script: the release first, so the admission finds the slot free.
    const released = store.finish(open, 100);
    const second = admit();

    expect(await first).toMatchObject({ admitted: false, refusal: { code: 'CONCURRENCY_LIMITED' } });
    await released;
    expect(await second).toMatchObject({ admitted: true });
    expect((await batchesSent(harness.metrics)) - before).toBe(2);
    expect(await usage()).toMatchObject({ concurrentRequests: { used: 1 }, tokenBudget: { used: 200, reserved: 100 } });
    await store.finish(reservationOf(await second), 100);
  });

  it('sends an admission at once while only releases are out, after them on the same connection', async () => {
    const open = reservationOf(await admit());
    const script = jest.spyOn(store as unknown as { script: () => unknown }, 'script');

    // The release goes out at the end of this turn of the event loop, alone.
    const released = store.finish(open, 100);
    await new Promise((resolve) => setImmediate(resolve));
    expect(script).toHaveBeenCalledTimes(1);
    // The next call's admission does not wait for that reply: it goes out now, and Redis runs it after the
    // release, so it finds the only slot free.
    const next = admit();
    expect(script).toHaveBeenCalledTimes(2);

    expect(await next).toMatchObject({ admitted: true });
    await released;
    expect(await usage()).toMatchObject({ concurrentRequests: { used: 1 }, tokenBudget: { used: 200, reserved: 100 } });
    await store.finish(reservationOf(await next), 100);
  });

  it('fails the admissions that waited behind a script that failed, and still sends the releases that waited', async () => {
    const open = reservationOf(await admit());
    // The next script fails, as one that timed out would; the ones after it reach Redis.
    const realScript = (store as unknown as { script: () => unknown }).script.bind(store);
    let failScript: (error: Error) => void = () => undefined;
    jest
      .spyOn(store as unknown as { script: () => unknown }, 'script')
      .mockImplementationOnce(() => () => new Promise((_resolve, reject) => (failScript = reject)))
      .mockImplementation(realScript);

    const inFlight = admit();
    const waiting = admit();
    const released = store.finish(open, 100);
    await new Promise((resolve) => setImmediate(resolve));
    failScript(new Error('Command timed out'));

    await expect(inFlight).rejects.toBeInstanceOf(LimitsUnavailableError);
    await expect(waiting).rejects.toBeInstanceOf(LimitsUnavailableError);
    await released;
    expect(await usage()).toMatchObject({ concurrentRequests: { used: 0 }, tokenBudget: { used: 100, reserved: 0 } });
    // Redis answers again: the next admission goes through.
    expect(await admit()).toMatchObject({ admitted: true });
  });

  it('sends an admission behind several releases with the next batch: under load, that wait fills it', async () => {
    const other = { id: randomUUID(), limits, loadPeriodUsage: async () => 0 };
    const one = reservationOf(await admit());
    const two = reservationOf(await store.admit({ organization: other, estimatedTokens: 100, now: T0 }));
    const script = jest.spyOn(store as unknown as { script: () => unknown }, 'script');

    // Both releases go out in one script at the end of this turn of the event loop.
    const released = Promise.all([store.finish(one, 100), store.finish(two, 100)]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(script).toHaveBeenCalledTimes(1);
    const next = admit();
    expect(script).toHaveBeenCalledTimes(1);

    expect(await next).toMatchObject({ admitted: true });
    await released;
    expect(script).toHaveBeenCalledTimes(2);
    await store.finish(reservationOf(await next), 100);
  });

  it('leaves the reservations of calls that end after shutdown to their leases, with one warning for all', async () => {
    const own = await redisHarness();
    const closing = own.store as RedisLimitsStore;
    const open = reservationOf(await admit(closing));
    const warn = jest.spyOn((closing as unknown as { logger: Logger }).logger, 'warn').mockImplementation(() => undefined);
    await own.close();

    await closing.finish(open, 100);
    await closing.finish({ ...open, member: `${open.member}-other` }, 100);

    expect(warn.mock.calls).toEqual([['Calls that end after the limits store closed leave their reservations to their leases']]);
    expect((await own.metrics.limitsFinishFailures.get()).values[0].value).toBe(2);
  });
});
