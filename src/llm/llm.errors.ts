import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';

/** What went wrong upstream, in the gateway's words. The HTTP mapping lives in LLM_ERROR_HTTP_STATUS only. */
export enum LlmErrorCode {
  MODEL_NOT_FOUND = 'MODEL_NOT_FOUND',
  UPSTREAM_BAD_REQUEST = 'UPSTREAM_BAD_REQUEST',
  UPSTREAM_AUTH_FAILED = 'UPSTREAM_AUTH_FAILED',
  UPSTREAM_RATE_LIMITED = 'UPSTREAM_RATE_LIMITED',
  UPSTREAM_ERROR = 'UPSTREAM_ERROR',
  UPSTREAM_TIMEOUT = 'UPSTREAM_TIMEOUT',
  UPSTREAM_UNAVAILABLE = 'UPSTREAM_UNAVAILABLE',
  REQUEST_ABORTED = 'REQUEST_ABORTED',
}

export const LLM_ERROR_HTTP_STATUS: Record<LlmErrorCode, number> = {
  [LlmErrorCode.MODEL_NOT_FOUND]: 400,
  [LlmErrorCode.UPSTREAM_BAD_REQUEST]: 400,
  // LiteLLM's or a provider's key is wrong: not the caller's fault.
  [LlmErrorCode.UPSTREAM_AUTH_FAILED]: 502,
  [LlmErrorCode.UPSTREAM_RATE_LIMITED]: 429,
  [LlmErrorCode.UPSTREAM_ERROR]: 502,
  [LlmErrorCode.UPSTREAM_TIMEOUT]: 504,
  [LlmErrorCode.UPSTREAM_UNAVAILABLE]: 503,
  // The caller went away; nobody reads this status, 499 is the usual convention.
  [LlmErrorCode.REQUEST_ABORTED]: 499,
};

/** Worth retrying later, or with the same model: never a reason to switch to a fallback model. */
const RETRYABLE = new Set([
  LlmErrorCode.UPSTREAM_RATE_LIMITED,
  LlmErrorCode.UPSTREAM_ERROR,
  LlmErrorCode.UPSTREAM_TIMEOUT,
  LlmErrorCode.UPSTREAM_UNAVAILABLE,
]);

export class LlmError extends Error {
  constructor(
    readonly code: LlmErrorCode,
    message: string,
    /** The status LiteLLM answered with, when it answered. */
    readonly upstreamStatus?: number,
    /** LiteLLM's Retry-After, passed on to the caller as is. */
    readonly retryAfter?: string,
  ) {
    super(message);
    this.name = 'LlmError';
  }

  get httpStatus(): number {
    return LLM_ERROR_HTTP_STATUS[this.code];
  }

  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}

const MAX_MESSAGE_LENGTH = 500;

/** Upstream text can quote keys ("Incorrect API key provided: sk-abc..."): never pass one on. */
export function redactSecrets(text: string): string {
  return text
    .replace(/\b(sk|pk|rk)-[A-Za-z0-9_\-*.]{3,}/g, '$1-[redacted]')
    .replace(/(bearer\s+)[^\s"',]+/gi, '$1[redacted]')
    .replace(/(api[_-]?key["'=:\s]+)[^\s"',]+/gi, '$1[redacted]');
}

function upstreamMessage(error: APIError): string {
  const body = error.error as { message?: unknown } | undefined;
  const text = typeof body?.message === 'string' ? body.message : error.message;
  return redactSecrets(text).slice(0, MAX_MESSAGE_LENGTH);
}

function statusOf(error: APIError): number | undefined {
  if (error.status !== undefined) return error.status;
  // An error inside a 200 stream carries its status only in the body's `code`.
  const code = Number((error.error as { code?: unknown } | undefined)?.code);
  return Number.isInteger(code) && code >= 400 ? code : undefined;
}

const MODEL_NOT_FOUND_TEXT = /invalid model name|model[^.]*(does not exist|not found)/i;

/** Translates whatever the openai SDK threw into an LlmError. This is the one place that decides. */
export function toLlmError(error: unknown): LlmError {
  if (error instanceof LlmError) return error;
  if (error instanceof APIUserAbortError) {
    return new LlmError(LlmErrorCode.REQUEST_ABORTED, 'The request was aborted before LiteLLM answered');
  }
  if (error instanceof APIConnectionTimeoutError) {
    return new LlmError(LlmErrorCode.UPSTREAM_TIMEOUT, 'LiteLLM did not answer in time');
  }
  if (error instanceof APIConnectionError) {
    return new LlmError(LlmErrorCode.UPSTREAM_UNAVAILABLE, 'LiteLLM is unreachable');
  }
  if (!(error instanceof APIError)) {
    return new LlmError(LlmErrorCode.UPSTREAM_ERROR, 'Unexpected failure while calling LiteLLM');
  }

  const status = statusOf(error);
  const message = upstreamMessage(error);
  if (status === 429) {
    const retryAfter = error.headers?.get('retry-after') ?? undefined;
    return new LlmError(LlmErrorCode.UPSTREAM_RATE_LIMITED, `Rate limited upstream: ${message}`, status, retryAfter);
  }
  // Without a database LiteLLM answers an unknown key with 400 `no_db_connection` instead of 401.
  const type = (error.error as { type?: unknown } | undefined)?.type;
  if (status === 401 || status === 403 || type === 'no_db_connection') {
    return new LlmError(
      LlmErrorCode.UPSTREAM_AUTH_FAILED,
      `LiteLLM or its provider refused the gateway's credentials (HTTP ${status})`,
      status,
    );
  }
  if (status === 408) {
    return new LlmError(LlmErrorCode.UPSTREAM_TIMEOUT, 'LiteLLM timed out waiting for the provider', status);
  }
  if (status === 404 || (status === 400 && MODEL_NOT_FOUND_TEXT.test(message))) {
    return new LlmError(LlmErrorCode.MODEL_NOT_FOUND, message, status);
  }
  if (status !== undefined && status >= 400 && status < 500) {
    return new LlmError(LlmErrorCode.UPSTREAM_BAD_REQUEST, message, status);
  }
  return new LlmError(LlmErrorCode.UPSTREAM_ERROR, `LiteLLM failed (HTTP ${status ?? 'unknown'})`, status);
}
