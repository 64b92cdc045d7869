import { ErrorCode } from '../common/errors/gateway-error';

/**
 * Failures that another model may not have: the model is unknown, the provider refused the request, or
 * refused our credentials for it. Rate limits, 5xx, timeouts and broken answers are not here: they go back
 * to the caller, since another model would meet the same outage or the caller should retry.
 */
const FALLS_BACK: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['MODEL_NOT_FOUND', 'UPSTREAM_BAD_REQUEST', 'UPSTREAM_AUTH_FAILED']);

/**
 * Whether an organization's call that failed with `code` is tried once more on its fallback model. A
 * content-policy refusal is not, unless FALLBACK_ON_CONTENT_POLICY says so: re-sending a refused prompt to
 * another provider is a decision, not a default.
 */
export function fallsBack(code: ErrorCode, onContentPolicy: boolean): boolean {
  return FALLS_BACK.has(code) || (onContentPolicy && code === 'UPSTREAM_CONTENT_POLICY');
}
