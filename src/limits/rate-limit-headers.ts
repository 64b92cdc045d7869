import type { RateLimitState, RateLimitWindow } from './limits.types';

/**
 * A duration as OpenAI writes x-ratelimit-reset-* (Go's time.Duration format, to the millisecond):
 * 250ms, 1s, 1.5s, 6m0s, 1h0m0s.
 */
export function formatResetDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms));
  if (total === 0) return '0s';
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const seconds = `${(total % 60_000) / 1000}s`;
  if (hours > 0) return `${hours}h${minutes}m${seconds}`;
  if (minutes > 0) return `${minutes}m${seconds}`;
  return seconds;
}

const HEADER_NAMES = {
  requests: ['x-ratelimit-limit-requests', 'x-ratelimit-remaining-requests', 'x-ratelimit-reset-requests'],
  tokens: ['x-ratelimit-limit-tokens', 'x-ratelimit-remaining-tokens', 'x-ratelimit-reset-tokens'],
} as const;

/** OpenAI's x-ratelimit-{limit,remaining,reset}-{requests,tokens} headers, for the limits that apply. */
export function rateLimitHeaders(state: RateLimitState): Record<string, string> {
  const headers: Record<string, string> = {};
  const add = (kind: 'requests' | 'tokens', window: RateLimitWindow | undefined) => {
    if (!window) return;
    // Constant names: every limited answer carries them, and a name built per call costs a hash lookup each time.
    const [limit, remaining, reset] = HEADER_NAMES[kind];
    headers[limit] = String(window.limit);
    headers[remaining] = String(window.remaining);
    headers[reset] = formatResetDuration(window.resetMs);
  };
  add('requests', state.requests);
  add('tokens', state.tokens);
  return headers;
}
