import type { FastifyInstance } from 'fastify';

/** No request of ours nests deeper than 4; this leaves room and keeps validation's recursion safe. */
export const MAX_JSON_DEPTH = 32;

/** Iterative, so that measuring a hostile document cannot overflow the stack either. */
export function jsonDepthExceeds(value: unknown, maxDepth: number): boolean {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const { value: current, depth } = stack.pop()!;
    if (current === null || typeof current !== 'object') continue;
    if (depth >= maxDepth) return true;
    for (const child of Object.values(current)) stack.push({ value: child, depth: depth + 1 });
  }
  return false;
}

/**
 * The only body parser: JSON, at most `bodyLimit` bytes (413 beyond, before parsing), prototype-poisoning
 * keys refused (Fastify's secure parser), and at most MAX_JSON_DEPTH levels deep (400 beyond).
 */
export function registerJsonBodyParser(fastify: FastifyInstance, bodyLimit: number): void {
  const parse = fastify.getDefaultJsonParser('error', 'error');
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit }, (request, body, done) => {
    parse(request, body as string, (error, value) => {
      if (error) return done(error, undefined);
      if (jsonDepthExceeds(value, MAX_JSON_DEPTH)) {
        return done(Object.assign(new Error(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`), { statusCode: 400 }), undefined);
      }
      done(null, value);
    });
  });
}
