import { limitsUnavailableError, refusalError } from './limits.errors';
import { formatResetDuration, rateLimitHeaders } from './rate-limit-headers';

describe('formatResetDuration', () => {
  it.each([
    [0, '0s'],
    [-5, '0s'],
    [17, '17ms'],
    [999.6, '1s'],
    [1_000, '1s'],
    [1_500, '1.5s'],
    [59_999, '59.999s'],
    [60_000, '1m0s'],
    [360_000, '6m0s'],
    [90_250, '1m30.25s'],
    [3_600_000, '1h0m0s'],
    [86_399_000, '23h59m59s'],
  ])('%d ms is %s, as OpenAI (Go) writes it', (ms, expected) => {
    expect(formatResetDuration(ms)).toBe(expected);
  });
});

describe('rateLimitHeaders', () => {
  it("renders OpenAI's six headers for the limits that apply, and none for the others", () => {
    expect(
      rateLimitHeaders({ requests: { limit: 100, remaining: 99, resetMs: 42_000 }, tokens: { limit: 40_000, remaining: 38_770, resetMs: 360_000 } }),
    ).toEqual({
      'x-ratelimit-limit-requests': '100',
      'x-ratelimit-remaining-requests': '99',
      'x-ratelimit-reset-requests': '42s',
      'x-ratelimit-limit-tokens': '40000',
      'x-ratelimit-remaining-tokens': '38770',
      'x-ratelimit-reset-tokens': '6m0s',
    });
    expect(rateLimitHeaders({ tokens: { limit: 10, remaining: 0, resetMs: 500 } })).toEqual({
      'x-ratelimit-limit-tokens': '10',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '500ms',
    });
    expect(rateLimitHeaders({})).toEqual({});
  });
});

describe('limits errors', () => {
  it('turns a refusal into a 429 with Retry-After and the rate-limit headers', () => {
    const error = refusalError(
      { code: 'RATE_LIMITED', limit: 'requestsPerMinute', message: 'slow down', retryAfterSeconds: 12 },
      { requests: { limit: 5, remaining: 0, resetMs: 11_200 } },
    );
    expect(error).toMatchObject({
      code: 'RATE_LIMITED',
      status: 429,
      message: 'slow down',
      headers: { 'retry-after': '12', 'x-ratelimit-limit-requests': '5', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '11.2s' },
    });
  });

  it('answers 503 LIMITS_UNAVAILABLE with Retry-After when the limits cannot be checked and the gateway fails closed', () => {
    expect(limitsUnavailableError()).toMatchObject({ code: 'LIMITS_UNAVAILABLE', status: 503, headers: { 'retry-after': '5' } });
  });
});
