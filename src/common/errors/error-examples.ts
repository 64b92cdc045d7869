import { applyDecorators } from '@nestjs/common';
import { ApiExtraModels, ApiResponse, getSchemaPath } from '@nestjs/swagger';
import { openAiErrorBody } from './all-exceptions.filter';
import { errorResponse, ErrorResponseDto } from './error-response';
import { ERROR_CODES, ErrorCode } from './gateway-error';

/** A message per code, as the gateway writes it: what Swagger shows as each status's examples. */
const EXAMPLE_MESSAGES: Record<ErrorCode, string> = {
  VALIDATION_FAILED: 'maxTokens must not be greater than 32768',
  BAD_REQUEST: "Body is not valid JSON but content-type is set to 'application/json'",
  UNAUTHORIZED: 'A valid API key is required: Authorization: Bearer <key>',
  FORBIDDEN: 'This route needs an admin API key',
  NOT_FOUND: 'Cannot POST /v1/chats',
  ORGANIZATION_NOT_FOUND: 'Organization 6f1c2f9e-2a59-4c43-9d2b-3a4f6f1f0e11 does not exist',
  ORGANIZATION_EXISTS: 'Organization 6f1c2f9e-2a59-4c43-9d2b-3a4f6f1f0e11 already exists',
  PAYLOAD_TOO_LARGE: 'Request body is too large',
  UNSUPPORTED_MEDIA_TYPE: 'Unsupported Media Type',
  UNKNOWN_MODEL: 'llmModel "gpt-5-turbo" not served by LiteLLM as a chat model. Available models: claude-3-5-sonnet, gpt-4o',
  FALLBACK_SAME_AS_PRIMARY: 'llmFallbackModel must differ from llmModel (both are gpt-4o)',
  RATE_LIMITED: "The organization's limit of 600 requests per minute is reached",
  CONCURRENCY_LIMITED: "The organization's 20 concurrent requests are all in flight",
  BUDGET_EXHAUSTED:
    "The organization's monthly token budget of 50000000 is spent (49999120 used or reserved, this call needs 4108) until 2026-12-01T00:00:00.000Z",
  MODEL_NOT_FOUND: 'Invalid model name passed in model=gpt-5-turbo',
  UPSTREAM_BAD_REQUEST: "This model's maximum context length is 128000 tokens",
  UPSTREAM_CONTENT_POLICY: "The provider's content policy refused the prompt",
  UPSTREAM_RATE_LIMITED: 'Rate limited upstream: Rate limit reached for gpt-4o',
  UPSTREAM_AUTH_FAILED: "LiteLLM or its provider refused the gateway's credentials (HTTP 401)",
  UPSTREAM_ERROR: 'LiteLLM failed (HTTP 500)',
  UPSTREAM_INVALID_RESPONSE: 'LiteLLM answered 200 with an invalid answer: no choices',
  UPSTREAM_STREAM_TRUNCATED: 'The stream from LiteLLM ended before the answer was complete',
  UPSTREAM_UNAVAILABLE: 'LiteLLM is unreachable',
  UPSTREAM_TIMEOUT: 'LiteLLM did not answer in time',
  DATABASE_UNAVAILABLE: 'The database is unreachable; try again shortly',
  LIMITS_UNAVAILABLE: 'Rate limits cannot be checked right now; try again shortly',
  MODEL_CATALOG_UNAVAILABLE: "Cannot check the models against LiteLLM's list (LiteLLM is unreachable); nothing was stored",
  SHUTTING_DOWN: 'The gateway is shutting down; retry the call',
  REQUEST_ABORTED: 'The caller went away',
  STREAM_WRITE_TIMEOUT: 'The caller read nothing for 60000 ms',
  INTERNAL_ERROR: 'Internal server error',
};

const EXAMPLE_REQUEST_ID = '0b7e9f2c-4a3d-4f7e-9a55-2f1c3b8d6e10';

/** The error body a code is answered with, as Swagger's example of it. */
export function exampleErrorBody(code: ErrorCode): ErrorResponseDto {
  return errorResponse(ERROR_CODES[code].status, code, EXAMPLE_MESSAGES[code], EXAMPLE_REQUEST_ID);
}

/** The parameter at fault in an example, for OpenAI's envelope (`param`). */
const EXAMPLE_PARAMS: Partial<Record<ErrorCode, string>> = { VALIDATION_FAILED: 'max_tokens' };
/** OpenAI's routes name fields in snake_case. */
const OPENAI_EXAMPLE_MESSAGES: Partial<Record<ErrorCode, string>> = { VALIDATION_FAILED: 'max_tokens must not be greater than 32768' };

/** OpenAI's error envelope, as Swagger shows it: the gateway's code in `code`, the offending field in `param`. */
const OPENAI_ERROR_SCHEMA = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: {
        message: { type: 'string', example: 'max_tokens must not be greater than 32768' },
        type: { type: 'string', example: 'invalid_request_error' },
        param: { type: 'string', nullable: true, example: 'max_tokens' },
        code: { type: 'string', example: 'VALIDATION_FAILED' },
      },
    },
  },
};

function errorResponses(codes: ErrorCode[], schema: object, body: (code: ErrorCode) => unknown) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) byStatus.set(ERROR_CODES[code].status, [...(byStatus.get(ERROR_CODES[code].status) ?? []), code]);
  return [...byStatus.entries()]
    .sort(([a], [b]) => a - b)
    .map(([status, group]) =>
      ApiResponse({
        status,
        description: group.map((code) => `\`${code}\`: ${ERROR_CODES[code].when}`).join('. '),
        content: {
          'application/json': {
            schema,
            examples: Object.fromEntries(group.map((code) => [code, { summary: code, value: body(code) }])),
          },
        },
      }),
    );
}

/**
 * The error responses of a route, from the codes it can answer: one response per status, whose description
 * says when each of its codes happens and whose examples are each code's own body. The codes, statuses and
 * descriptions come from ERROR_CODES, so the document cannot disagree with the gateway.
 */
export function ApiErrorResponses(...codes: ErrorCode[]): MethodDecorator & ClassDecorator {
  return applyDecorators(ApiExtraModels(ErrorResponseDto), ...errorResponses(codes, { $ref: getSchemaPath(ErrorResponseDto) }, exampleErrorBody));
}

/** The same, in OpenAI's error envelope: the /openai/v1 routes. */
export function ApiOpenAiErrorResponses(...codes: ErrorCode[]): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ...errorResponses(codes, OPENAI_ERROR_SCHEMA, (code) =>
      openAiErrorBody({ statusCode: ERROR_CODES[code].status, code, message: OPENAI_EXAMPLE_MESSAGES[code] ?? EXAMPLE_MESSAGES[code], headers: {}, param: EXAMPLE_PARAMS[code] }),
    ),
  );
}
