import type { FastifyInstance } from 'fastify';
import { AsyncLocalStorage } from 'node:async_hooks';

interface RequestContext {
  requestId: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

/** The id of the request being served, where a line is written while serving one. */
export function currentRequestId(): string | undefined {
  return storage.getStore()?.requestId;
}

/**
 * Makes the request id follow everything done while serving a request (Fastify 5 keeps the onRequest hook's
 * async context through body parsing to the handler and the reply), so that every log line written then carries
 * it, whichever class writes it (see NestPinoLogger). Register it before any other onRequest hook.
 */
export function bindRequestContext(fastify: FastifyInstance): void {
  fastify.addHook('onRequest', (request, _reply, done) => {
    storage.run({ requestId: String(request.id) }, done);
  });
}
