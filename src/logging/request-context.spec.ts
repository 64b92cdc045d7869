import Fastify from 'fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import { currentRequestId, bindRequestContext } from './request-context';

describe('request context', () => {
  it("gives every request its own id, across awaits and after its body was read, and none outside a request", async () => {
    let id = 0;
    const fastify = Fastify({ genReqId: () => `request-${++id}` });
    bindRequestContext(fastify);
    fastify.addHook('preHandler', async () => {
      await sleep(1);
    });
    fastify.post('/echo', async (request) => {
      const before = currentRequestId();
      await sleep(Math.random() * 20);
      return { before, after: currentRequestId(), id: request.id };
    });
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    try {
      const { port } = fastify.server.address() as { port: number };
      const answers = await Promise.all(
        Array.from({ length: 50 }, () =>
          fetch(`http://127.0.0.1:${port}/echo`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ padding: 'x'.repeat(100_000) }), // read in several chunks
          }).then((response) => response.json() as Promise<{ before?: string; after?: string; id: string }>),
        ),
      );
      for (const answer of answers) expect(answer).toEqual({ before: answer.id, after: answer.id, id: answer.id });
      expect(new Set(answers.map((answer) => answer.id)).size).toBe(50);
      expect(currentRequestId()).toBeUndefined();
    } finally {
      await fastify.close();
    }
  });
});
