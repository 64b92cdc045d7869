import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { GatewayError } from '../common/errors/gateway-error';
import { classifyUpstreamFailure, redactSecrets, toUpstreamError } from './litellm.errors';

/** What the SDK throws for an HTTP error: the `error` object of LiteLLM's body, status and headers. */
function apiError(status: number, error: object, headers: Record<string, string> = {}): APIError {
  return APIError.generate(status, { error }, undefined, new Headers(headers));
}

/** What toUpstreamError names a failure: a GatewayError for everything that is LiteLLM's doing. */
const mapped = (error: unknown, signal?: AbortSignal) => toUpstreamError(error, signal) as GatewayError;

describe('toUpstreamError', () => {
  it.each([
    [429, 'UPSTREAM_RATE_LIMITED', 429],
    [401, 'UPSTREAM_AUTH_FAILED', 502],
    [403, 'UPSTREAM_AUTH_FAILED', 502],
    [404, 'MODEL_NOT_FOUND', 400],
    [408, 'UPSTREAM_TIMEOUT', 504],
    [422, 'UPSTREAM_BAD_REQUEST', 400],
    [500, 'UPSTREAM_ERROR', 502],
    [502, 'UPSTREAM_ERROR', 502],
    [503, 'UPSTREAM_ERROR', 502],
    [504, 'UPSTREAM_ERROR', 502],
  ])('maps LiteLLM %i to %s (HTTP %i)', (status, code, httpStatus) => {
    const error = mapped(apiError(status, { message: 'upstream says no' }));

    expect(error).toBeInstanceOf(GatewayError);
    expect(error.code).toBe(code);
    expect(error.status).toBe(httpStatus);
  });

  it("recognises LiteLLM's 400 for an unknown model", () => {
    const error = mapped(
      apiError(400, { message: '/chat/completions: Invalid model name passed in model=foo. Call `/v1/models`' }),
    );
    expect(error.code).toBe('MODEL_NOT_FOUND');
    expect(error.message).toContain('model=foo');
  });

  it('keeps other 400s as UPSTREAM_BAD_REQUEST with the upstream explanation', () => {
    const error = mapped(apiError(400, { message: 'ContextWindowExceededError: too long' }));
    expect(error.code).toBe('UPSTREAM_BAD_REQUEST');
    expect(error.message).toBe('ContextWindowExceededError: too long');
  });

  it.each([
    [{ message: 'litellm.ContentPolicyViolationError: litellm.ContentPolicyViolationError: OpenAIException - rejected' }],
    [{ message: 'Your request was rejected as a result of our safety system.', code: 'content_policy_violation' }],
  ])("names a content-policy refusal as such: %j", (body) => {
    expect(mapped(apiError(400, body)).code).toBe('UPSTREAM_CONTENT_POLICY');
  });

  it("treats LiteLLM's no_db_connection answer to a wrong key as an auth failure", () => {
    const error = mapped(apiError(400, { message: 'No connected db.', type: 'no_db_connection' }));
    expect(error.code).toBe('UPSTREAM_AUTH_FAILED');
  });

  it('passes Retry-After on from a 429, in seconds or as an HTTP date, and nothing else', () => {
    expect(mapped(apiError(429, { message: 'slow down' }, { 'retry-after': '12' })).headers).toEqual({ 'retry-after': '12' });
    const date = 'Wed, 21 Oct 2026 07:28:00 GMT';
    expect(mapped(apiError(429, { message: 'slow down' }, { 'retry-after': date })).headers).toEqual({ 'retry-after': date });
    expect(mapped(apiError(429, { message: 'slow down' }, { 'retry-after': 'soon, maybe\u00ff' })).headers).toEqual({});
  });

  it('returns a bug as it is, for the filter to log as one, rather than calling it an upstream fault', () => {
    const bug = new TypeError('x is undefined');
    expect(toUpstreamError(bug)).toBe(bug);
  });

  it('reads the status of an error sent inside a 200 stream from its code', () => {
    expect(classifyUpstreamFailure(undefined, { message: 'rate limited mid-stream', code: '429' }).code).toBe('UPSTREAM_RATE_LIMITED');
    expect(classifyUpstreamFailure(undefined, { message: 'boom', code: '500' }).code).toBe('UPSTREAM_ERROR');
  });

  it('never passes on an auth failure text, which may quote a key', () => {
    const error = mapped(apiError(401, { message: 'Incorrect API key provided: sk-proj-abcdef123456' }));
    expect(error.message).not.toContain('abcdef');
  });

  it('says what the gateway aborted an attempt for, when it did', () => {
    const controller = new AbortController();
    controller.abort(new GatewayError('UPSTREAM_TIMEOUT', 'LiteLLM sent nothing for 500 ms'));
    expect(mapped(new APIUserAbortError(), controller.signal)).toMatchObject({ code: 'UPSTREAM_TIMEOUT', message: 'LiteLLM sent nothing for 500 ms' });
  });

  it.each([
    [new APIConnectionTimeoutError(), 'UPSTREAM_TIMEOUT', 504],
    [new APIConnectionError({ message: 'ECONNREFUSED' }), 'UPSTREAM_UNAVAILABLE', 503],
    [new APIConnectionError({ message: 'fetch failed', cause: Object.assign(new Error('Headers Timeout Error'), { code: 'UND_ERR_HEADERS_TIMEOUT' }) }), 'UPSTREAM_TIMEOUT', 504],
    [new APIUserAbortError(), 'REQUEST_ABORTED', 499],
    [Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }), 'UPSTREAM_ERROR', 502],
    [new SyntaxError('Unexpected token < in JSON'), 'UPSTREAM_INVALID_RESPONSE', 502],
  ])('maps %p to %s', (thrown, code, httpStatus) => {
    const error = mapped(thrown);
    expect(error.code).toBe(code);
    expect(error.status).toBe(httpStatus);
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
