import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AuthenticatedRequest } from '../auth/api-key.guard';
import { MetricsService } from './metrics.service';
import { MODEL_HEADER } from '../common/model-name';
import { REQUEST_ID_HEADER } from '../common/request-id';

/** Probes and scrapes come every few seconds: logged at debug level so they do not drown the rest. */
const QUIET_ROUTES = new Set(['/health', '/health/live', '/health/ready', '/metrics']);
/** Swagger UI, its assets and the OpenAPI document (app.factory.ts serves them under /docs): debug too. */
const QUIET_PREFIX = '/docs';

/** The `code` of an error body, native (`"code":"X"`) or OpenAI's envelope (`"error":{..."code":"X"}`). */
const ERROR_CODE = /"code":"([A-Z][A-Z0-9_]{0,63})"/;

/**
 * What a finished request is logged at: probes, scrapes and Swagger at debug; a 5xx (the gateway or what it
 * depends on failed: LiteLLM, the database, Redis) at warn; everything else at info, a 4xx with its code (the
 * caller's mistake, answered as designed).
 */
function levelFor(route: string, statusCode: number): 'debug' | 'info' | 'warn' {
  if (QUIET_ROUTES.has(route) || route.startsWith(QUIET_PREFIX)) return 'debug';
  return statusCode >= 500 ? 'warn' : 'info';
}

/**
 * Per request: the x-request-id header, the in-flight gauge, the duration histogram and ONE log line with method,
 * route, status, the error code of a failure, duration, model and organization where known. It listens for the
 * socket response's `close`, which also fires for streamed (hijacked) replies and for callers that hang up. Never
 * logs headers or bodies: no keys, no prompts. The request id is Fastify's own log binding (`requestId`, see
 * app.factory.ts), so it appears once.
 */
export function observeRequests(fastify: FastifyInstance, metrics: MetricsService): void {
  const errorCodes = new WeakMap<FastifyRequest, string>();

  // Only error answers are looked at, and only their first bytes: they are small JSON bodies the filter wrote.
  fastify.addHook('onSend', (request, reply, payload, done) => {
    if (reply.statusCode >= 400 && typeof payload === 'string') {
      const code = ERROR_CODE.exec(payload.slice(0, 2_048))?.[1];
      if (code) errorCodes.set(request, code);
    }
    done(null, payload);
  });

  fastify.addHook('onRequest', async (request, reply) => {
    void reply.header(REQUEST_ID_HEADER, request.id);
    const startedAt = performance.now();
    metrics.httpRequestsInFlight.inc();

    reply.raw.once('close', () => {
      metrics.httpRequestsInFlight.dec();
      const durationMs = performance.now() - startedAt;
      const route = request.routeOptions.url ?? 'unmatched';
      const completed = reply.raw.writableFinished;
      const statusCode = completed ? reply.raw.statusCode : 499;
      metrics.httpRequestDuration.observe(
        { method: request.method, route, status_code: String(statusCode) },
        durationMs / 1000,
      );

      const level = levelFor(route, statusCode);
      // Building the line costs more than skipping it: only when the level is on.
      if (!(request.log as unknown as Logger).isLevelEnabled(level)) return;
      const params = request.params as { id?: string } | undefined;
      const fields = {
        method: request.method,
        route,
        statusCode,
        code: errorCodes.get(request),
        durationMs: Math.round(durationMs * 10) / 10,
        // Set through Fastify on plain replies, straight on the socket response on streamed ones.
        model: reply.getHeader(MODEL_HEADER) ?? reply.raw.getHeader(MODEL_HEADER),
        organizationId: route.startsWith('/v1/organizations/:id') ? params?.id : undefined,
        callerKeyId: (request as AuthenticatedRequest).caller?.keyId,
        ...(completed ? {} : { clientClosed: true }),
      };
      request.log[level](fields, 'request completed');
    });
  });
}
