import { randomUUID } from 'node:crypto';
import type {
  Admission,
  AdmissionRequest,
  BudgetPeriod,
  LimitName,
  LimitUsage,
  OrganizationLimits,
  OrganizationLimitsUsage,
  RateLimitState,
  RateLimitWindow,
  Refusal,
  RefusalCode,
  Reservation,
} from './limits.types';

/**
 * The decisions both stores share: which counters a call is checked against, in which window or period,
 * and what the stores' readings mean (which refusal, which Retry-After, which headers). A store only
 * executes a plan atomically (Redis: one Lua script; memory: one synchronous step), so the two cannot
 * drift apart on anything but that execution, and the same table of cases tests both.
 */

export const MINUTE_MS = 60_000;
/** A refused concurrent call may retry this soon: a slot frees when any call ends, which is not known ahead. */
const CONCURRENCY_RETRY_MS = 1_000;

export function toMs(now: Date | number | undefined): number {
  if (now === undefined) return Date.now();
  return typeof now === 'number' ? now : now.getTime();
}

/** Fixed windows of one minute, numbered from the epoch. */
export function minuteWindow(now: number): { window: number; endsAt: number } {
  const window = Math.floor(now / MINUTE_MS);
  return { window, endsAt: (window + 1) * MINUTE_MS };
}

interface Period {
  id: string;
  startsAt: number;
  endsAt: number;
}

/** The last period found per kind: every admission asks, and the answer changes once a day or a month. */
const lastPeriods: Partial<Record<BudgetPeriod, Period>> = {};

/** The UTC day or month that contains `now`, and its id (day:2026-03-31, month:2026-03). */
export function budgetPeriod(period: BudgetPeriod, now: number): Period {
  const last = lastPeriods[period];
  if (last && now >= last.startsAt && now < last.endsAt) return last;
  return (lastPeriods[period] = Object.freeze(findBudgetPeriod(period, now)));
}

function findBudgetPeriod(period: BudgetPeriod, now: number): Period {
  const date = new Date(now);
  const [year, month, day] = [date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()];
  if (period === 'day') {
    const startsAt = Date.UTC(year, month, day);
    return { id: `day:${new Date(startsAt).toISOString().slice(0, 10)}`, startsAt, endsAt: Date.UTC(year, month, day + 1) };
  }
  const startsAt = Date.UTC(year, month, 1);
  return { id: `month:${new Date(startsAt).toISOString().slice(0, 7)}`, startsAt, endsAt: Date.UTC(year, month + 1, 1) };
}

/** One per-minute counter to check: `cost` is added if the call is admitted; admitted only if used + cost <= max. */
export interface WindowCheck {
  limit: 'keyRequestsPerMinute' | 'requestsPerMinute' | 'tokensPerMinute';
  counter: string;
  max: number;
  cost: number;
  window: number;
  endsAt: number;
}

/** The organization's open calls: each holds a slot until it finishes or its lease runs out. */
export interface OpenCallsCheck {
  counter: string;
  /** null: not limited, the call is only recorded (so that finish() can reconcile it exactly once). */
  max: number | null;
  member: string;
  leaseUntil: number;
}

/** The period's used tokens plus open reservations plus `cost` must stay within `max`. */
export interface BudgetCheck {
  counter: string;
  max: number;
  cost: number;
  period: string;
  startsAt: number;
  endsAt: number;
}

export interface AdmissionPlan {
  now: number;
  windows: WindowCheck[];
  calls: OpenCallsCheck | null;
  /** Only with `calls`: a budget reservation needs a lease. */
  budget: BudgetCheck | null;
  reservation: Reservation | null;
}

/** What a store read while it executed a plan; `failed` empty means it reserved everything. */
export interface CheckedPlan {
  failed: LimitName[];
  /** Per window of the plan, in order: after this call's cost if admitted, before it if refused. */
  windowUsed: number[];
  /** Open calls, this one included if admitted. */
  openCalls: number;
  budgetUsed: number;
  /** Open budget reservations, this one included if admitted. */
  budgetReserved: number;
}

/** A store's answer: a budget with no state in the store needs the ledger's count first. */
export type PlanOutcome = { needsPeriodUsage: true } | ({ needsPeriodUsage?: false } & CheckedPlan);

const organizationCounter = (organizationId: string, name: 'rpm' | 'tpm' | 'calls' | 'budget') => `o:${organizationId}:${name}`;
const keyCounter = (keyId: string) => `k:${keyId}:rpm`;

function budgetCheck(organizationId: string, limits: OrganizationLimits, now: number, cost: number): BudgetCheck | null {
  if (limits.tokenBudget === null) return null;
  const { id, startsAt, endsAt } = budgetPeriod(limits.budgetPeriod, now);
  return { counter: organizationCounter(organizationId, 'budget'), max: limits.tokenBudget, cost, period: id, startsAt, endsAt };
}

/** The member of an open call encodes what a lease expiry needs: its budget period and reserved tokens. */
function callMember(callId: string, budgetPeriodId: string, budgetTokens: number): string {
  return `${callId}|${budgetPeriodId}|${budgetTokens}`;
}

export function parseCallMember(member: string): { period: string; tokens: number } {
  const [, period, tokens] = member.split('|');
  return { period, tokens: Number(tokens) };
}

/** The checks of one admission, or null when no limit applies (nothing to count, nothing to finish). */
export function planAdmission(request: AdmissionRequest, leaseMs: number): AdmissionPlan | null {
  const now = toMs(request.now);
  const estimate = Math.max(0, Math.ceil(request.estimatedTokens));
  const { window, endsAt } = minuteWindow(now);
  const windows: WindowCheck[] = [];
  const perMinute = (limit: WindowCheck['limit'], counter: string, max: number | null | undefined, cost: number) => {
    if (max !== null && max !== undefined) windows.push({ limit, counter, max, cost, window, endsAt });
  };

  if (request.callerKey) perMinute('keyRequestsPerMinute', keyCounter(request.callerKey.id), request.callerKey.requestsPerMinute, 1);
  const organization = request.organization;
  let calls: OpenCallsCheck | null = null;
  let budget: BudgetCheck | null = null;
  let reservation: Reservation | null = null;
  if (organization) {
    const { id, limits } = organization;
    perMinute('requestsPerMinute', organizationCounter(id, 'rpm'), limits.requestsPerMinute, 1);
    perMinute('tokensPerMinute', organizationCounter(id, 'tpm'), limits.tokensPerMinute, estimate);
    budget = budgetCheck(id, limits, now, estimate);
    // Anything finish() reconciles or releases makes the call an open call: its member is what makes a second finish a no-op.
    if (limits.concurrentRequests !== null || limits.tokensPerMinute !== null || budget) {
      const member = callMember(randomUUID(), budget?.period ?? '', budget ? estimate : 0);
      calls = { counter: organizationCounter(id, 'calls'), max: limits.concurrentRequests, member, leaseUntil: now + leaseMs };
      reservation = {
        calls: calls.counter,
        member,
        tokens: limits.tokensPerMinute !== null ? { counter: organizationCounter(id, 'tpm'), window } : null,
        budget: budget ? { counter: budget.counter, period: budget.period } : null,
        estimatedTokens: estimate,
      };
    }
  }
  if (windows.length === 0 && !calls) return null;
  return { now, windows, calls, budget, reservation };
}

const REFUSAL_CODES: Record<LimitName, RefusalCode> = {
  keyRequestsPerMinute: 'RATE_LIMITED',
  requestsPerMinute: 'RATE_LIMITED',
  tokensPerMinute: 'RATE_LIMITED',
  concurrentRequests: 'CONCURRENCY_LIMITED',
  tokenBudget: 'BUDGET_EXHAUSTED',
};

/** Turns what a store read into the admission: the refusal, when several limits refuse, is the one that lasts longest. */
export function decideAdmission(plan: AdmissionPlan, checked: CheckedPlan): Admission {
  const rateLimits = rateLimitState(plan, checked);
  if (checked.failed.length === 0) return { admitted: true, reservation: plan.reservation, rateLimits };
  const refusals = checked.failed.map((limit) => refusal(plan, checked, limit));
  const longest = refusals.reduce((a, b) => (b.retryAfterSeconds > a.retryAfterSeconds ? b : a));
  return { admitted: false, refusal: longest, rateLimits };
}

function refusal(plan: AdmissionPlan, checked: CheckedPlan, limit: LimitName): Refusal {
  const seconds = (until: number) => Math.max(1, Math.ceil((until - plan.now) / 1000));
  const code = REFUSAL_CODES[limit];
  if (limit === 'concurrentRequests') {
    const max = plan.calls!.max;
    const message = `The organization's ${max} concurrent requests are all in flight`;
    return { code, limit, retryAfterSeconds: seconds(plan.now + CONCURRENCY_RETRY_MS), message };
  }
  if (limit === 'tokenBudget') {
    const { max, cost, period, endsAt } = plan.budget!;
    const name = period.startsWith('day') ? 'daily' : 'monthly';
    const taken = checked.budgetUsed + checked.budgetReserved;
    const message =
      cost > max
        ? `This call's estimated ${cost} tokens exceed the organization's whole ${name} token budget of ${max}: lower maxTokens or shorten the prompt`
        : `The organization's ${name} token budget of ${max} is spent (${taken} used or reserved, this call needs ${cost}) until ${new Date(endsAt).toISOString()}`;
    return { code, limit, retryAfterSeconds: seconds(endsAt), message };
  }
  const index = plan.windows.findIndex((check) => check.limit === limit);
  const { max, cost, endsAt } = plan.windows[index];
  const messages: Record<WindowCheck['limit'], string> = {
    keyRequestsPerMinute: `This API key's limit of ${max} requests per minute is reached`,
    requestsPerMinute: `The organization's limit of ${max} requests per minute is reached`,
    tokensPerMinute:
      cost > max
        ? `This call's estimated ${cost} tokens exceed the organization's whole limit of ${max} tokens per minute: lower maxTokens or shorten the prompt`
        : `The organization's limit of ${max} tokens per minute is reached (${checked.windowUsed[index]} used, this call needs ${cost})`,
  };
  return { code, limit, retryAfterSeconds: seconds(endsAt), message: messages[limit as WindowCheck['limit']] };
}

function rateLimitState(plan: AdmissionPlan, checked: CheckedPlan): RateLimitState {
  const state: RateLimitState = {};
  plan.windows.forEach((check, index) => {
    const remaining = Math.max(0, check.max - checked.windowUsed[index]);
    const window: RateLimitWindow = { limit: check.max, remaining, resetMs: check.endsAt - plan.now };
    if (check.limit === 'tokensPerMinute') state.tokens = window;
    // The tighter of the key's and the organization's: what the caller must pace itself by.
    else if (!state.requests || window.remaining < state.requests.remaining) state.requests = window;
  });
  return state;
}

/** What usage() reads: the organization's counters now, only for its limited limits. */
export interface UsagePlan {
  now: number;
  requests: WindowCheck | null;
  tokens: WindowCheck | null;
  calls: { counter: string } | null;
  budget: BudgetCheck | null;
}

export interface UsageReading {
  requestsUsed: number;
  tokensUsed: number;
  openCalls: number;
  /** null: the store holds no state for the period, the ledger's count is used. */
  budget: { used: number; reserved: number } | null;
}

export function planUsage(organizationId: string, limits: OrganizationLimits, now: number): UsagePlan {
  const { window, endsAt } = minuteWindow(now);
  const perMinute = (limit: 'requestsPerMinute' | 'tokensPerMinute', name: 'rpm' | 'tpm'): WindowCheck | null =>
    limits[limit] === null ? null : { limit, counter: organizationCounter(organizationId, name), max: limits[limit]!, cost: 0, window, endsAt };
  return {
    now,
    requests: perMinute('requestsPerMinute', 'rpm'),
    tokens: perMinute('tokensPerMinute', 'tpm'),
    calls: limits.concurrentRequests === null ? null : { counter: organizationCounter(organizationId, 'calls') },
    budget: budgetCheck(organizationId, limits, now, 0),
  };
}

/** `reading.budget` is the store's or, when the store had none, the ledger's count. */
export function describeUsage(plan: UsagePlan, limits: OrganizationLimits, reading: UsageReading): OrganizationLimitsUsage {
  const usage = (limit: number | null, used: number, resetsAt: number | null): LimitUsage => {
    if (limit === null) return { limit: null, used: null, remaining: null, resetsAt: null };
    return { limit, used, remaining: Math.max(0, limit - used), resetsAt: resetsAt === null ? null : new Date(resetsAt) };
  };
  const budget = reading.budget ?? { used: 0, reserved: 0 };
  return {
    requestsPerMinute: usage(limits.requestsPerMinute, reading.requestsUsed, plan.requests?.endsAt ?? null),
    tokensPerMinute: usage(limits.tokensPerMinute, reading.tokensUsed, plan.tokens?.endsAt ?? null),
    concurrentRequests: usage(limits.concurrentRequests, reading.openCalls, null),
    tokenBudget: {
      ...usage(limits.tokenBudget, budget.used + budget.reserved, plan.budget?.endsAt ?? null),
      period: limits.budgetPeriod,
      reserved: limits.tokenBudget === null ? null : budget.reserved,
    },
  };
}
