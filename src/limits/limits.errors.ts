import { GatewayError } from '../common/errors/gateway-error';
import type { RateLimitState, Refusal } from './limits.types';
import { rateLimitHeaders } from './rate-limit-headers';

/** How long a caller should wait when the limits cannot be checked (LIMITS_FAIL_MODE=closed). */
const LIMITS_RETRY_AFTER_SECONDS = '5';

/** The store cannot check the limits (Redis unreachable or timing out, the ledger unreadable). */
export class LimitsUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LimitsUnavailableError';
  }
}

/** A refused admission as the caller receives it: 429, Retry-After and OpenAI's rate-limit headers. */
export function refusalError(refusal: Refusal, rateLimits: RateLimitState): GatewayError {
  return new GatewayError(refusal.code, refusal.message, {
    ...rateLimitHeaders(rateLimits),
    'retry-after': String(refusal.retryAfterSeconds),
  });
}

export function limitsUnavailableError(): GatewayError {
  return new GatewayError('LIMITS_UNAVAILABLE', 'Rate limits cannot be checked right now; try again shortly', {
    'retry-after': LIMITS_RETRY_AFTER_SECONDS,
  });
}
