import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AuthenticatedRequest } from '../auth/api-key.guard';
import { MetricsService } from './metrics.service';
import { MODEL_HEADER } from '../common/model-name';
import { REQUEST_ID_HEADER } from '../common/request-id';


/** Probes and scrapes come every few seconds: logged at debug level so they do not drown the rest. */
const QUIET_ROUTES = new Set(['/health', '/health/live', '/health/ready', '/metrics']);

/**
 * Per request: the x-request-id header, the in-flight gauge, the duration histogram and ONE log line
 * with method, route, status, duration, model and organization where known. It listens for the socket
 * response's `close`, which also fires for streamed (hijacked) replies and for callers that hang up.
 * Never logs headers or bodies: no keys, no prompts.
 */
export function observeRequests(fastify: FastifyInstance, metrics: MetricsService): void {
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

      const level = QUIET_ROUTES.has(route) ? 'debug' : 'info';
      // Building the line costs more than skipping it: only when the level is on.
      if (!(request.log as unknown as Logger).isLevelEnabled(level)) return;
      const params = request.params as { id?: string } | undefined;
      const fields = {
        requestId: request.id,
        method: request.method,
        route,
        statusCode,
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
