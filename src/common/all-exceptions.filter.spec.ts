import { BadRequestException, ServiceUnavailableException } from '@nestjs/common';
import { LlmError, LlmErrorCode } from '../llm/llm.errors';
import { describeError, INTERNAL_ERROR } from './all-exceptions.filter';

describe('describeError', () => {
  it('maps an LlmError through its code, passing Retry-After on', () => {
    const error = new LlmError(LlmErrorCode.UPSTREAM_RATE_LIMITED, 'slow down', 429, '7');
    expect(describeError(error)).toEqual({
      statusCode: 429,
      code: 'UPSTREAM_RATE_LIMITED',
      message: 'slow down',
      headers: { 'retry-after': '7' },
    });
  });

  it("keeps our exceptions' code, message and headers", () => {
    const error = new ServiceUnavailableException({ code: 'DATABASE_UNAVAILABLE', message: 'away', retryAfter: '5' });
    expect(describeError(error)).toEqual({
      statusCode: 503,
      code: 'DATABASE_UNAVAILABLE',
      message: 'away',
      headers: { 'retry-after': '5' },
    });
  });

  it("joins validation messages and derives a code from the status when there is none", () => {
    expect(describeError(new BadRequestException(['a is wrong', 'b is wrong']))).toMatchObject({
      statusCode: 400,
      code: 'BAD_REQUEST',
      message: 'a is wrong; b is wrong',
    });
  });

  it("passes Fastify's 4xx errors on (body too large, bad JSON)", () => {
    const error = Object.assign(new Error('Request body is too large'), { statusCode: 413 });
    expect(describeError(error)).toMatchObject({ statusCode: 413, code: 'PAYLOAD_TOO_LARGE' });
  });

  it('turns anything else into the opaque 500', () => {
    expect(describeError(new TypeError('x is undefined'))).toBe(INTERNAL_ERROR);
    expect(describeError(Object.assign(new Error('boom'), { statusCode: 500 }))).toBe(INTERNAL_ERROR);
    expect(describeError('a string')).toBe(INTERNAL_ERROR);
  });
});
