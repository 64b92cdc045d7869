import { NotFoundException } from '@nestjs/common';
import { describeError, INTERNAL_ERROR } from './all-exceptions.filter';
import { ERROR_CODES, GatewayError } from './gateway-error';

describe('describeError', () => {
  it("maps a GatewayError through its code's status, with its headers", () => {
    const error = new GatewayError('UPSTREAM_RATE_LIMITED', 'slow down', { 'retry-after': '7' });
    expect(describeError(error)).toEqual({
      statusCode: 429,
      code: 'UPSTREAM_RATE_LIMITED',
      message: 'slow down',
      headers: { 'retry-after': '7' },
    });
  });

  it('gives every code its documented status', () => {
    for (const [code, { status }] of Object.entries(ERROR_CODES)) {
      expect(describeError(new GatewayError(code as keyof typeof ERROR_CODES, 'x')).statusCode).toBe(status);
    }
  });

  it.each([
    [413, 'PAYLOAD_TOO_LARGE'],
    [415, 'UNSUPPORTED_MEDIA_TYPE'],
    [400, 'BAD_REQUEST'],
  ])("passes Fastify's own %i errors on as %s", (statusCode, code) => {
    const error = Object.assign(new Error('from fastify'), { statusCode });
    expect(describeError(error)).toMatchObject({ statusCode, code, message: 'from fastify' });
  });

  it("answers the framework's other client errors as 400 BAD_REQUEST, as the error table says", () => {
    expect(describeError(Object.assign(new Error('Length Required'), { statusCode: 411 }))).toMatchObject({ statusCode: 400, code: 'BAD_REQUEST' });
  });

  it("answers Nest's unknown-route error as NOT_FOUND", () => {
    expect(describeError(new NotFoundException('Cannot GET /nowhere'))).toMatchObject({ statusCode: 404, code: 'NOT_FOUND' });
  });

  it('turns anything else into the opaque 500', () => {
    expect(describeError(new TypeError('x is undefined'))).toBe(INTERNAL_ERROR);
    expect(describeError(Object.assign(new Error('boom'), { statusCode: 500 }))).toBe(INTERNAL_ERROR);
    expect(describeError('a string')).toBe(INTERNAL_ERROR);
  });
});
