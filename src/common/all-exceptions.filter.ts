import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { LlmError } from '../llm/llm.errors';
import { codeForStatus, errorResponse } from './error-response';

interface DescribedError {
  statusCode: number;
  code: string;
  message: string;
  headers: Record<string, string>;
}

function messageOf(response: unknown, fallback: string): string {
  const message = (response as { message?: unknown })?.message ?? response;
  if (Array.isArray(message)) return message.join('; ');
  return typeof message === 'string' ? message : fallback;
}

/** Fastify's own errors (body too large, malformed JSON, wrong content type) carry a 4xx statusCode. */
function isClientError(error: unknown): error is { statusCode: number; message: string } {
  const { statusCode, message } = (error ?? {}) as { statusCode?: unknown; message?: unknown };
  return typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500 && typeof message === 'string';
}

/** What any error not recognised below becomes; its details go to the server log only. */
export const INTERNAL_ERROR: Readonly<DescribedError> = {
  statusCode: 500,
  code: 'INTERNAL_ERROR',
  message: 'Internal server error',
  headers: {},
};

export function describeError(error: unknown): Readonly<DescribedError> {
  if (error instanceof LlmError) {
    const headers: Record<string, string> = error.retryAfter ? { 'retry-after': error.retryAfter } : {};
    return { statusCode: error.httpStatus, code: error.code, message: error.message, headers };
  }
  if (error instanceof HttpException) {
    // Our own exceptions may carry `{ code, message, retryAfter, headers }` as their response.
    const response = error.getResponse();
    const { code, retryAfter, headers } = (typeof response === 'object' ? response : {}) as {
      code?: unknown;
      retryAfter?: unknown;
      headers?: Record<string, string>;
    };
    return {
      statusCode: error.getStatus(),
      code: typeof code === 'string' ? code : codeForStatus(error.getStatus()),
      message: messageOf(response, error.message),
      headers: { ...headers, ...(typeof retryAfter === 'string' && { 'retry-after': retryAfter }) },
    };
  }
  if (isClientError(error)) {
    return { statusCode: error.statusCode, code: codeForStatus(error.statusCode), message: error.message, headers: {} };
  }
  return INTERNAL_ERROR;
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
    void reply
      .status(described.statusCode)
      .headers(described.headers)
      // A route may have declared another content type (GET /metrics does); errors are always JSON.
      .type('application/json; charset=utf-8')
      .send(errorResponse(described.statusCode, described.code, described.message, request.id));
  }
}
