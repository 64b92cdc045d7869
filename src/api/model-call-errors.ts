import type { ErrorCode } from '../common/errors/gateway-error';

/** What a model call can be answered besides its 200: the caller's mistakes, the limits, and LiteLLM's failures. */
export const MODEL_CALL_ERRORS: ErrorCode[] = [
  'VALIDATION_FAILED',
  'BAD_REQUEST',
  'MODEL_NOT_FOUND',
  'UPSTREAM_BAD_REQUEST',
  'UPSTREAM_CONTENT_POLICY',
  'UNAUTHORIZED',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'RATE_LIMITED',
  'UPSTREAM_RATE_LIMITED',
  'UPSTREAM_AUTH_FAILED',
  'UPSTREAM_ERROR',
  'UPSTREAM_INVALID_RESPONSE',
  'UPSTREAM_UNAVAILABLE',
  'LIMITS_UNAVAILABLE',
  'UPSTREAM_TIMEOUT',
];
/** An organization's call adds its own: the organization, its concurrency and budget, the database it is read from. */
export const ORGANIZATION_CALL_ERRORS: ErrorCode[] = [
  ...MODEL_CALL_ERRORS,
  'ORGANIZATION_NOT_FOUND',
  'CONCURRENCY_LIMITED',
  'BUDGET_EXHAUSTED',
  'DATABASE_UNAVAILABLE',
];
