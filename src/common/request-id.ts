import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const REQUEST_ID_HEADER = 'x-request-id';

/** Short printable ids only: a caller's header ends up in logs and response headers. */
const ACCEPTABLE_REQUEST_ID = /^[A-Za-z0-9._:\-]{1,128}$/;

/** Keeps the caller's `x-request-id` when it is sane, so one id follows a call across services. */
export function requestIdFor(request: IncomingMessage): string {
  const given = request.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && ACCEPTABLE_REQUEST_ID.test(given) ? given : randomUUID();
}
