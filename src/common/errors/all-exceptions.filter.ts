import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { errorResponse } from './error-response';
import { ERROR_CODES, ErrorCode, GatewayError } from './gateway-error';

export interface DescribedError {
  statusCode: number;
  code: ErrorCode;
  message: string;
  headers: Readonly<Record<string, string>>;
  param?: string;
}

/** Routes that answer as OpenAI's API does, errors included, so that its SDKs raise their usual errors. */
export const OPENAI_ROUTE_PREFIX = '/openai/';

/** OpenAI's `type` for each status; its SDKs choose the error class by status alone. */
function openAiErrorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  return status >= 500 ? 'server_error' : 'invalid_request_error';
}

/** OpenAI's error envelope, the gateway's code in `code`. */
export function openAiErrorBody(described: DescribedError) {
  return { error: { message: described.message, type: openAiErrorType(described.statusCode), param: described.param ?? null, code: described.code } };
}

/** What any error not recognised below becomes; its details go to the server log only. */
export const INTERNAL_ERROR: Readonly<DescribedError> = Object.freeze({
  statusCode: 500,
  code: 'INTERNAL_ERROR',
  message: 'Internal server error',
  headers: {},
});

/** Fastify's own errors (body too large, malformed JSON, wrong content type) carry a 4xx statusCode. */
function clientErrorStatus(error: unknown): number | undefined {
  const { statusCode, message } = (error ?? {}) as { statusCode?: unknown; message?: unknown };
  const isClientError = typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500 && typeof message === 'string';
  return isClientError ? statusCode : undefined;
}

/** Statuses the framework itself (Fastify, Nest's router) answers with, and the code each gets. */
const FRAMEWORK_CODES: Readonly<Record<number, ErrorCode>> = {
  400: 'BAD_REQUEST',
  404: 'NOT_FOUND',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
};

/**
 * The one place where an error becomes a status, a code, a message and headers. The gateway's own code
 * throws GatewayErrors only; the framework's errors (Fastify's body parsing, Nest's "no such route") are
 * mapped by status; everything else is an opaque 500.
 */
export function describeError(error: unknown): Readonly<DescribedError> {
  if (error instanceof GatewayError) {
    return { statusCode: error.status, code: error.code, message: error.message, headers: error.headers, ...(error.param && { param: error.param }) };
  }
  const status = error instanceof HttpException ? error.getStatus() : clientErrorStatus(error);
  if (status === undefined || status >= 500) return INTERNAL_ERROR;
  // Any other client error of the framework's is a plain 400, so that every status matches ERROR_CODES.
  const code = FRAMEWORK_CODES[status] ?? 'BAD_REQUEST';
  return { statusCode: ERROR_CODES[code].status, code, message: (error as Error).message, headers: {} };
}

/** Bounds of the lingering close below: enough for a body well over the limit, not for a flood. */
const LINGER_MAX_BYTES = 32 * 1024 * 1024;
const LINGER_MAX_MS = 2_000;

type LingeringSocket = Socket & { lingering?: boolean };

/**
 * An error answered before the request body was read (413, or a 401 from the early key check) closes the
 * connection. Closing it while the client is still sending makes the kernel answer the client's next bytes
 * with a reset, and the client sees that instead of our answer. So this connection closes the way nginx's
 * "lingering close" does: our side is ended after the answer (FIN), the rest of the body is read and
 * dropped, and the socket is destroyed once the client has closed its side, or after a bound in bytes and time.
 */
function lingerOnUnreadBody(request: IncomingMessage, reply: FastifyReply): void {
  const socket = request.socket as LingeringSocket;
  if (request.complete || socket.lingering) return;
  // The connection ends with this answer: the caller must not send another request on it.
  void reply.header('connection', 'close');
  socket.lingering = true;
  let received = 0;
  const timer = setTimeout(() => socket.destroy(), LINGER_MAX_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  // Node ends and then destroys a `Connection: close` socket as soon as the answer is written: only end it.
  socket.destroySoon = function endOnly(this: Socket) {
    if (this.writable) this.end();
  };
  socket.once('end', () => socket.destroy());
  request.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > LINGER_MAX_BYTES) socket.destroy();
  });
  request.resume();
}

/**
 * Turns every error into `{ statusCode, error, message, code, requestId }`. Anything unrecognised is a 500
 * whose details stay in the server log, never in the body.
 */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  catch(error: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    const described = describeError(error);
    if (described === INTERNAL_ERROR) {
      const route = request.routeOptions?.url ?? 'unknown route';
      this.logger.error(`Unhandled error on ${request.method} ${route} (request ${request.id})`, error instanceof Error ? error.stack : String(error));
    }
    if (reply.sent || reply.raw.headersSent) return;
    lingerOnUnreadBody(request.raw, reply);
    void reply
      .status(described.statusCode)
      .headers(described.headers)
      // A route may have declared another content type (GET /metrics does); errors are always JSON.
      .type('application/json; charset=utf-8')
      .send(
        request.url.startsWith(OPENAI_ROUTE_PREFIX)
          ? openAiErrorBody(described)
          : errorResponse(described.statusCode, described.code, described.message, request.id),
      );
  }
}
