/**
 * Every error code the gateway answers with, its HTTP status, and when it happens. The README's error table
 * lists exactly these (a test holds the two together). Codes are part of the API: callers branch on them.
 */
export const ERROR_CODES = {
  // The caller's request
  VALIDATION_FAILED: { status: 400, when: 'A field is missing, has the wrong type or breaks a documented limit; the message names it' },
  BAD_REQUEST: { status: 400, when: 'The body is not JSON, is empty, or is nested deeper than 32 levels' },
  UNAUTHORIZED: { status: 401, when: 'No API key, a malformed one or an unknown one (one answer for all three)' },
  FORBIDDEN: { status: 403, when: 'A caller key on an admin route' },
  NOT_FOUND: { status: 404, when: 'No such route' },
  ORGANIZATION_NOT_FOUND: { status: 404, when: 'No organization has this id' },
  ORGANIZATION_EXISTS: { status: 409, when: 'Creating an organization with an id that is taken' },
  PAYLOAD_TOO_LARGE: { status: 413, when: 'The body is larger than BODY_LIMIT_BYTES' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, when: 'The body is not application/json' },
  UNKNOWN_MODEL: { status: 400, when: "An organization's model or fallback model is not a chat model LiteLLM serves" },
  FALLBACK_SAME_AS_PRIMARY: { status: 400, when: "An organization's fallback model equals its model" },
  // The organization's limits (nothing is sent upstream)
  RATE_LIMITED: { status: 429, when: "The organization's requests or tokens per minute, or the caller key's requests per minute, are used up; Retry-After: when the minute turns" },
  CONCURRENCY_LIMITED: { status: 429, when: "As many of the organization's calls as its concurrentRequests are in flight (Retry-After: 1)" },
  BUDGET_EXHAUSTED: { status: 429, when: "The call's token estimate does not fit in what is left of the organization's daily or monthly token budget; Retry-After: when the period turns (UTC)" },
  // What LiteLLM or the provider answered
  MODEL_NOT_FOUND: { status: 400, when: 'LiteLLM does not serve the model asked for' },
  UPSTREAM_BAD_REQUEST: { status: 400, when: 'LiteLLM or the provider refused the request (context too long, bad parameter); its explanation is passed on' },
  UPSTREAM_CONTENT_POLICY: { status: 400, when: "The provider's content policy refused the prompt; no fallback unless FALLBACK_ON_CONTENT_POLICY=true" },
  UPSTREAM_RATE_LIMITED: { status: 429, when: 'The provider or LiteLLM rate-limited the call; its Retry-After is passed on' },
  UPSTREAM_AUTH_FAILED: { status: 502, when: "LiteLLM or the provider refused the gateway's credentials (not the caller's fault)" },
  UPSTREAM_ERROR: { status: 502, when: 'LiteLLM or the provider failed (5xx), also in the middle of a stream' },
  UPSTREAM_INVALID_RESPONSE: { status: 502, when: 'LiteLLM answered 200 with something that is not a valid answer (no choices, no vectors, not an event stream)' },
  UPSTREAM_STREAM_TRUNCATED: { status: 502, when: 'A stream ended without a finish reason and without [DONE] (sent as an error event)' },
  UPSTREAM_UNAVAILABLE: { status: 503, when: 'LiteLLM cannot be reached' },
  UPSTREAM_TIMEOUT: { status: 504, when: 'No answer within LLM_TIMEOUT_MS, or a stream silent for LLM_STREAM_IDLE_TIMEOUT_MS' },
  // The gateway's own state
  DATABASE_UNAVAILABLE: { status: 503, when: 'The database cannot be reached (Retry-After: 5)' },
  LIMITS_UNAVAILABLE: { status: 503, when: 'Redis (the shared rate limits) cannot be reached and LIMITS_FAIL_MODE=closed (Retry-After: 5)' },
  MODEL_CATALOG_UNAVAILABLE: { status: 503, when: "An organization write cannot check its models because LiteLLM's model list cannot be read" },
  SHUTTING_DOWN: { status: 503, when: 'A stream was still open when the shutdown timeout ended it (sent as an error event)' },
  REQUEST_ABORTED: { status: 499, when: 'The caller went away before the answer was complete (logs and metrics only: nobody receives it)' },
  STREAM_WRITE_TIMEOUT: { status: 499, when: 'The caller stopped reading a stream for STREAM_WRITE_TIMEOUT_MS; the stream is cut (logs and metrics only)' },
  INTERNAL_ERROR: { status: 500, when: 'A bug: the details are in the server log under the request id, never in the answer' },
} as const satisfies Record<string, { status: number; when: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * The one error type of the gateway's own code: a code from ERROR_CODES, a message safe to show the caller,
 * and headers to send with it (Retry-After, WWW-Authenticate). The exception filter maps it; nothing else
 * decides a status.
 */
export class GatewayError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly headers: Readonly<Record<string, string>> = NO_HEADERS,
    /** The request field at fault, when one is (OpenAI's error envelope names it as `param`). */
    readonly param?: string,
  ) {
    super(message);
    this.name = 'GatewayError';
    this.status = ERROR_CODES[code].status;
  }
}
