import { GatewayError } from '../common/errors/gateway-error';

/** How long a caller should wait before trying again when the database is away. */
export const DATABASE_RETRY_AFTER_SECONDS = '5';

/** SQLSTATE classes and socket errors that mean "the database cannot be reached", not "the query is wrong". */
const UNAVAILABLE_SQLSTATE = /^(08|53|57P)/;
const UNAVAILABLE_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE']);
const UNAVAILABLE_MESSAGE = /connection terminated|timeout exceeded when trying to connect|connection (is )?closed|not (yet )?connected|cannot use a pool after calling end/i;

export function isDatabaseUnavailable(error: unknown): boolean {
  const candidates = [error, (error as { driverError?: unknown })?.driverError];
  return candidates.some((candidate) => {
    const { code, message } = (candidate ?? {}) as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && (UNAVAILABLE_SOCKET_CODES.has(code) || UNAVAILABLE_SQLSTATE.test(code))) return true;
    return typeof message === 'string' && UNAVAILABLE_MESSAGE.test(message);
  });
}

export function databaseUnavailable(): GatewayError {
  return new GatewayError('DATABASE_UNAVAILABLE', 'The database is unreachable; try again shortly', {
    'retry-after': DATABASE_RETRY_AFTER_SECONDS,
  });
}

/** Postgres' unique_violation. */
export function isUniqueViolation(error: unknown): boolean {
  const driverError = (error as { driverError?: { code?: unknown } })?.driverError;
  return (driverError?.code ?? (error as { code?: unknown })?.code) === '23505';
}
