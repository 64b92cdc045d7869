import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { LlmError, LlmErrorCode, redactSecrets, toLlmError } from './llm.errors';

/** What the SDK throws for an HTTP error: the `error` object of LiteLLM's body, status and headers. */
function apiError(status: number, error: object, headers: Record<string, string> = {}): APIError {
  return APIError.generate(status, { error }, undefined, new Headers(headers));
}

describe('toLlmError', () => {
  it.each([
    [429, LlmErrorCode.UPSTREAM_RATE_LIMITED, 429, true],
    [401, LlmErrorCode.UPSTREAM_AUTH_FAILED, 502, false],
    [403, LlmErrorCode.UPSTREAM_AUTH_FAILED, 502, false],
    [404, LlmErrorCode.MODEL_NOT_FOUND, 400, false],
    [408, LlmErrorCode.UPSTREAM_TIMEOUT, 504, true],
    [422, LlmErrorCode.UPSTREAM_BAD_REQUEST, 400, false],
    [500, LlmErrorCode.UPSTREAM_ERROR, 502, true],
    [502, LlmErrorCode.UPSTREAM_ERROR, 502, true],
    [503, LlmErrorCode.UPSTREAM_ERROR, 502, true],
    [504, LlmErrorCode.UPSTREAM_ERROR, 502, true],
  ])('maps LiteLLM %i to %s (HTTP %i, retryable %s)', (status, code, httpStatus, retryable) => {
    const error = toLlmError(apiError(status, { message: 'upstream says no' }));

    expect(error).toBeInstanceOf(LlmError);
    expect(error.code).toBe(code);
    expect(error.httpStatus).toBe(httpStatus);
    expect(error.retryable).toBe(retryable);
    expect(error.upstreamStatus).toBe(status);
  });

  it("recognises LiteLLM's 400 for an unknown model", () => {
    const error = toLlmError(
      apiError(400, { message: '/chat/completions: Invalid model name passed in model=foo. Call `/v1/models`' }),
    );
    expect(error.code).toBe(LlmErrorCode.MODEL_NOT_FOUND);
    expect(error.message).toContain('model=foo');
  });

  it('keeps other 400s as UPSTREAM_BAD_REQUEST with the upstream explanation', () => {
    const error = toLlmError(apiError(400, { message: 'ContextWindowExceededError: too long' }));
    expect(error.code).toBe(LlmErrorCode.UPSTREAM_BAD_REQUEST);
    expect(error.message).toBe('ContextWindowExceededError: too long');
  });

  it("treats LiteLLM's no_db_connection answer to a wrong key as an auth failure", () => {
    const error = toLlmError(apiError(400, { message: 'No connected db.', type: 'no_db_connection' }));
    expect(error.code).toBe(LlmErrorCode.UPSTREAM_AUTH_FAILED);
  });

  it('passes Retry-After on from a 429', () => {
    const error = toLlmError(apiError(429, { message: 'slow down' }, { 'retry-after': '12' }));
    expect(error.retryAfter).toBe('12');
  });

  it('reads the status of an error sent inside a 200 stream from its code', () => {
    // This is how the SDK's stream reader throws `data: {"error": {...}}`.
    const error = toLlmError(new APIError(undefined, { message: 'rate limited mid-stream', code: '429' }, undefined, undefined));
    expect(error.code).toBe(LlmErrorCode.UPSTREAM_RATE_LIMITED);
  });

  it('never passes on an auth failure text, which may quote a key', () => {
    const error = toLlmError(apiError(401, { message: 'Incorrect API key provided: sk-proj-abcdef123456' }));
    expect(error.message).not.toContain('abcdef');
  });

  it.each([
    [new APIConnectionTimeoutError(), LlmErrorCode.UPSTREAM_TIMEOUT, 504],
    [new APIConnectionError({ message: 'ECONNREFUSED' }), LlmErrorCode.UPSTREAM_UNAVAILABLE, 503],
    [new APIUserAbortError(), LlmErrorCode.REQUEST_ABORTED, 499],
    [new TypeError('something odd'), LlmErrorCode.UPSTREAM_ERROR, 502],
  ])('maps %p to %s', (thrown, code, httpStatus) => {
    const error = toLlmError(thrown);
    expect(error.code).toBe(code);
    expect(error.httpStatus).toBe(httpStatus);
  });
});

describe('redactSecrets', () => {
  it.each([
    ['key sk-live-1234567890abcdef leaked', 'key sk-[redacted] leaked'],
    ['Authorization: Bearer abc.def.ghi', 'Authorization: Bearer [redacted]'],
    ['api_key=supersecret123 rest', 'api_key=[redacted] rest'],
    ['nothing to hide', 'nothing to hide'],
  ])('%s → %s', (input, expected) => {
    expect(redactSecrets(input)).toBe(expected);
  });
});
