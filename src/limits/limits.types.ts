import type { BudgetPeriod } from '../config/environment';

export type { BudgetPeriod };

/** An organization's limits; each null is unlimited. */
export interface OrganizationLimits {
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
  concurrentRequests: number | null;
  /** Tokens per budget period (prompt and completion together). */
  tokenBudget: number | null;
  budgetPeriod: BudgetPeriod;
}

/** The limits a call can be refused by. */
export type LimitName = 'keyRequestsPerMinute' | 'requestsPerMinute' | 'tokensPerMinute' | 'concurrentRequests' | 'tokenBudget';

export type RefusalCode = 'RATE_LIMITED' | 'CONCURRENCY_LIMITED' | 'BUDGET_EXHAUSTED';

export interface AdmissionRequest {
  /** The organization the call is for, with its limits. Absent: a call without an organization. */
  organization?: {
    id: string;
    limits: OrganizationLimits;
    /**
     * The tokens the usage ledger recorded for the organization in the budget period that contains `now`.
     * Called only when the store holds no state for that period (its first call, or Redis lost its data).
     */
    loadPeriodUsage(period: { startsAt: Date; endsAt: Date }): Promise<number>;
  };
  /** The caller key (its id, never the key) and its requests per minute; null is unlimited. */
  callerKey?: { id: string; requestsPerMinute: number | null };
  /** Prompt tokens plus maxTokens (or LIMITS_DEFAULT_MAX_TOKENS): what the call may use at most. */
  estimatedTokens: number;
  /** Defaults to the current time; tests set it. */
  now?: Date | number;
}

/**
 * What finish() needs to release an admitted call. Opaque to callers: hand it back as it is.
 * `calls` and `member` name the call in its organization's open calls.
 */
export interface Reservation {
  readonly calls: string;
  readonly member: string;
  /** The tokens-per-minute window the estimate was reserved in. */
  readonly tokens: { readonly counter: string; readonly window: number } | null;
  /** The budget period the estimate was reserved in. */
  readonly budget: { readonly counter: string; readonly period: string } | null;
  readonly estimatedTokens: number;
}

/** One per-minute limit as OpenAI's x-ratelimit-* headers show it. */
export interface RateLimitWindow {
  limit: number;
  /** After this admission (a refused call took nothing). */
  remaining: number;
  /** Until the window turns. */
  resetMs: number;
}

/** The numbers behind OpenAI's headers: `requests` is the tighter of the organization's and the caller key's. */
export interface RateLimitState {
  requests?: RateLimitWindow;
  tokens?: RateLimitWindow;
}

export interface Refusal {
  code: RefusalCode;
  limit: LimitName;
  /** Safe to show the caller. */
  message: string;
  /** Always at least 1. */
  retryAfterSeconds: number;
}

export type Admission =
  | {
      admitted: true;
      /** Hand to finish() when the call ends; null when nothing was reserved (no limit applies). */
      reservation: Reservation | null;
      rateLimits: RateLimitState;
    }
  | { admitted: false; refusal: Refusal; rateLimits: RateLimitState };

export interface UsageRequest {
  organizationId: string;
  limits: OrganizationLimits;
  loadPeriodUsage: NonNullable<AdmissionRequest['organization']>['loadPeriodUsage'];
  now?: Date | number;
}

/** One limit now. An unlimited one is not counted: everything but `limit` is null. */
export interface LimitUsage {
  limit: number | null;
  used: number | null;
  remaining: number | null;
  /** When a per-minute window or the budget period turns; null for concurrency. */
  resetsAt: Date | null;
}

export interface OrganizationLimitsUsage {
  requestsPerMinute: LimitUsage;
  tokensPerMinute: LimitUsage;
  /** `used`: calls in flight. */
  concurrentRequests: LimitUsage;
  /** `used`: tokens of finished calls and of calls in flight (their estimates, `reserved`). */
  tokenBudget: LimitUsage & { period: BudgetPeriod; reserved: number | null };
}
