import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { GatewayError } from '../common/errors/gateway-error';

const MAX_MESSAGE_LENGTH = 500;

/** Upstream text can quote keys ("Incorrect API key provided: sk-abc..."): never pass one on. */
export function redactSecrets(text: string): string {
  return text
    .replace(/\b(sk|pk|rk)-[A-Za-z0-9_\-*.]{3,}/g, '$1-[redacted]')
    .replace(/(bearer\s+)[^\s"',]+/gi, '$1[redacted]')
    .replace(/(api[_-]?key["'=:\s]+)[^\s"',]+/gi, '$1[redacted]');
}

/** LiteLLM's error body: `{"error": {"message", "type", "param", "code"}}`, `code` being the status as a string. */
export interface UpstreamErrorBody {
  message?: unknown;
  type?: unknown;
  code?: unknown;
}

/** A Retry-After worth passing on: seconds, or an HTTP date; anything else never becomes a header of ours. */
function isRetryAfter(value: string | null | undefined): value is string {
  return typeof value === 'string' && (/^\d{1,6}$/.test(value) || (/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(value) && !Number.isNaN(Date.parse(value))));
}

const MODEL_NOT_FOUND_TEXT = /invalid model name|model[^.]*(does not exist|not found)/i;
/** LiteLLM's ContentPolicyViolationError, and OpenAI's own code for it. */
const CONTENT_POLICY_TEXT = /ContentPolicyViolationError|content_policy_violation/i;
const UNDICI_TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * What LiteLLM's answer means, from its status (or, for an error inside a 200 stream, the body's `code`), its
 * body and its Retry-After. The one place that decides what an upstream failure is called.
 */
export function classifyUpstreamFailure(status: number | undefined, body: UpstreamErrorBody | undefined, retryAfter?: string | null): GatewayError {
  const code = Number(body?.code);
  const effective = status ?? (Number.isInteger(code) && code >= 400 ? code : undefined);
  const text = typeof body?.message === 'string' ? body.message : '';
  const message = redactSecrets(text).slice(0, MAX_MESSAGE_LENGTH) || `HTTP ${effective ?? 'unknown'}`;
  if (effective === 429) {
    return new GatewayError('UPSTREAM_RATE_LIMITED', `Rate limited upstream: ${message}`, isRetryAfter(retryAfter) ? { 'retry-after': retryAfter } : undefined);
  }
  // Without a database LiteLLM answers an unknown key with 400 `no_db_connection` instead of 401.
  if (effective === 401 || effective === 403 || body?.type === 'no_db_connection') {
    return new GatewayError('UPSTREAM_AUTH_FAILED', `LiteLLM or its provider refused the gateway's credentials (HTTP ${effective})`);
  }
  if (effective === 408) return new GatewayError('UPSTREAM_TIMEOUT', 'LiteLLM timed out waiting for the provider');
  if (effective === 404 || (effective === 400 && MODEL_NOT_FOUND_TEXT.test(text))) {
    return new GatewayError('MODEL_NOT_FOUND', message);
  }
  if (effective === 400 && (CONTENT_POLICY_TEXT.test(text) || body?.code === 'content_policy_violation')) {
    return new GatewayError('UPSTREAM_CONTENT_POLICY', message);
  }
  if (effective !== undefined && effective >= 400 && effective < 500) return new GatewayError('UPSTREAM_BAD_REQUEST', message);
  return new GatewayError('UPSTREAM_ERROR', `LiteLLM failed (HTTP ${effective ?? 'unknown'})`);
}

function causeCode(error: Error): unknown {
  return (error.cause as { code?: unknown } | undefined)?.code;
}

/** Socket-level failures: the connection to LiteLLM broke while an answer was being read. */
const BROKEN_CONNECTION = /^(UND_ERR_|ECONNRESET$|EPIPE$|ECONNREFUSED$|ETIMEDOUT$)/;

/**
 * Translates whatever a call to LiteLLM threw into a GatewayError. `signal` is the attempt's own: when the
 * gateway aborted it, its reason (a GatewayError: timeout, caller gone) is what happened. Anything not
 * recognised is returned as it is: a bug of ours, which the filter logs and answers as INTERNAL_ERROR,
 * rather than an upstream fault it is not.
 */
export function toUpstreamError(error: unknown, signal?: AbortSignal): GatewayError | unknown {
  if (signal?.aborted && signal.reason instanceof GatewayError) return signal.reason;
  if (error instanceof GatewayError) return error;
  if (error instanceof APIUserAbortError) {
    return new GatewayError('REQUEST_ABORTED', 'The request was aborted before LiteLLM answered');
  }
  if (error instanceof APIConnectionTimeoutError || (error instanceof Error && UNDICI_TIMEOUTS.has(causeCode(error) as string))) {
    return new GatewayError('UPSTREAM_TIMEOUT', 'LiteLLM did not answer in time');
  }
  if (error instanceof APIConnectionError) return new GatewayError('UPSTREAM_UNAVAILABLE', 'LiteLLM is unreachable');
  if (error instanceof APIError) {
    return classifyUpstreamFailure(error.status, error.error as UpstreamErrorBody | undefined, error.headers?.get('retry-after'));
  }
  // The SDK parses a 200 as JSON: a body that is not JSON is no answer.
  if (error instanceof SyntaxError) {
    return new GatewayError('UPSTREAM_INVALID_RESPONSE', 'LiteLLM answered 200 with an invalid answer: a body that is not JSON');
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && UNDICI_TIMEOUTS.has(code)) return new GatewayError('UPSTREAM_TIMEOUT', 'LiteLLM did not answer in time');
  if (typeof code === 'string' && BROKEN_CONNECTION.test(code)) {
    return new GatewayError('UPSTREAM_ERROR', 'The connection to LiteLLM broke before the answer was complete');
  }
  return error;
}
