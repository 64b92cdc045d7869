import { budgetPeriod, minuteWindow, planAdmission } from './admission-plan';
import type { OrganizationLimits } from './limits.types';

const unlimited: OrganizationLimits = { requestsPerMinute: null, tokensPerMinute: null, concurrentRequests: null, tokenBudget: null, budgetPeriod: 'day' };
const ledger = async () => 0;

describe('minuteWindow', () => {
  it('numbers fixed one-minute windows from the epoch', () => {
    expect(minuteWindow(Date.UTC(2026, 0, 1, 0, 0, 59, 999))).toEqual({ window: 29_453_760, endsAt: Date.UTC(2026, 0, 1, 0, 1) });
    expect(minuteWindow(Date.UTC(2026, 0, 1, 0, 1)).window).toBe(29_453_761);
  });
});

describe('budgetPeriod', () => {
  it.each([
    ['day', '2026-03-31T23:59:59.999Z', 'day:2026-03-31', '2026-03-31T00:00:00.000Z', '2026-04-01T00:00:00.000Z'],
    ['day', '2028-02-28T12:00:00Z', 'day:2028-02-28', '2028-02-28T00:00:00.000Z', '2028-02-29T00:00:00.000Z'],
    ['month', '2028-02-29T23:00:00Z', 'month:2028-02', '2028-02-01T00:00:00.000Z', '2028-03-01T00:00:00.000Z'],
    ['month', '2026-12-31T23:59:59Z', 'month:2026-12', '2026-12-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z'],
  ] as const)('a %s around %s is %s, in UTC', (period, now, id, startsAt, endsAt) => {
    const found = budgetPeriod(period, Date.parse(now));
    expect({ id: found.id, startsAt: new Date(found.startsAt).toISOString(), endsAt: new Date(found.endsAt).toISOString() }).toEqual({ id, startsAt, endsAt });
  });

  it('keeps the period it found only while it lasts, back and forth across a turn', () => {
    const turn = Date.UTC(2026, 6, 1);
    const ids = [turn - 1, turn - 1, turn, turn + 1, turn - 1].map((now) => [budgetPeriod('day', now).id, budgetPeriod('month', now).id]);
    expect(ids).toEqual([
      ['day:2026-06-30', 'month:2026-06'],
      ['day:2026-06-30', 'month:2026-06'],
      ['day:2026-07-01', 'month:2026-07'],
      ['day:2026-07-01', 'month:2026-07'],
      ['day:2026-06-30', 'month:2026-06'],
    ]);
  });
});

describe('planAdmission', () => {
  it('plans nothing when no limit applies', () => {
    expect(planAdmission({ estimatedTokens: 10 }, 1_000)).toBeNull();
    expect(planAdmission({ organization: { id: 'o', limits: unlimited, loadPeriodUsage: ledger }, callerKey: { id: 'k', requestsPerMinute: null }, estimatedTokens: 10 }, 1_000)).toBeNull();
  });

  it('counts requests per minute without opening a call: there is nothing to finish', () => {
    const plan = planAdmission({ organization: { id: 'o', limits: { ...unlimited, requestsPerMinute: 5 }, loadPeriodUsage: ledger }, estimatedTokens: 10, now: 0 }, 1_000);
    expect(plan).toMatchObject({ windows: [{ limit: 'requestsPerMinute', max: 5, cost: 1 }], calls: null, budget: null, reservation: null });
  });

  it('opens a call, leased, for what finish() reconciles, with the budget period and tokens in its member', () => {
    const now = Date.UTC(2026, 5, 15, 8);
    const plan = planAdmission(
      { organization: { id: 'o', limits: { ...unlimited, tokensPerMinute: 1_000, tokenBudget: 5_000, budgetPeriod: 'month' }, loadPeriodUsage: ledger }, estimatedTokens: 99.2, now },
      30_000,
    )!;
    expect(plan.calls).toEqual({ counter: 'o:o:calls', max: null, member: expect.stringMatching(/^[0-9a-f-]{36}\|month:2026-06\|100$/), leaseUntil: now + 30_000 });
    expect(plan.reservation).toEqual({
      calls: 'o:o:calls',
      member: plan.calls!.member,
      tokens: { counter: 'o:o:tpm', window: minuteWindow(now).window },
      budget: { counter: 'o:o:budget', period: 'month:2026-06' },
      estimatedTokens: 100,
    });
  });
});
