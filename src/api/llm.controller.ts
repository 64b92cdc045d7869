import { Body, Controller, Get, HttpCode, Param, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiExtraModels, ApiOkResponse, ApiOperation, ApiParam, ApiTags, getSchemaPath } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiErrorResponses } from '../common/errors/error-examples';
import { parseUuid } from '../common/validation';
import type { ChatMessage, ChatRequest } from '../litellm/litellm.types';
import { ModelCatalogService } from '../litellm/model-catalog.service';
import { ChatResult, LlmService } from '../routing/llm.service';
import { MODEL_HEADER } from '../common/model-name';
import { abortOnClientDisconnect, callContext, ChatResponder, FALLBACK_REASON_HEADER, nativeStreamFormat, servedByHeaders } from './chat-responder';
import { ChatRequestDto } from './dto/chat-request.dto';
import { checkConversation, toResponseFormat, toToolCalls, toToolDefinitions } from './dto/chat-shapes';
import { EmbeddingsRequestDto } from './dto/embeddings-request.dto';
import {
  ChatCompletionResultDto,
  EmbeddingBatchResultDto,
  EmbeddingResultDto,
  ModelListDto,
  OrgChatCompletionResultDto,
} from './dto/llm-responses.dto';
import { MODEL_CALL_ERRORS, ORGANIZATION_CALL_ERRORS } from './model-call-errors';

const EXAMPLE_ORGANIZATION_ID = '6f1c2f9e-2a59-4c43-9d2b-3a4f6f1f0e11';

/** Request bodies Swagger UI offers, the first prefilled: a small plain call, whose "Execute" shows a JSON answer. */
const CHAT_EXAMPLES = {
  plain: {
    summary: 'A short plain answer',
    value: { messages: [{ role: 'user', content: 'Say hi' }], model: 'gpt-4o', maxTokens: 100, stream: false },
  },
  conversation: {
    summary: 'A system prompt and a conversation',
    value: {
      messages: [
        { role: 'system', content: 'You answer in one short sentence.' },
        { role: 'user', content: 'What is a gateway?' },
        { role: 'assistant', content: 'A single door that every call goes through.' },
        { role: 'user', content: 'Why have one?' },
      ],
      temperature: 0.2,
      maxTokens: 200,
    },
  },
  stream: {
    summary: 'Streamed (text/event-stream)',
    value: { messages: [{ role: 'user', content: 'Count to three' }], maxTokens: 100, stream: true },
  },
  tools: {
    summary: 'With a tool the model may call',
    value: {
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
      tools: [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            description: 'Current weather',
            parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
          },
        },
      ],
      maxTokens: 200,
    },
  },
  json: {
    summary: 'A JSON answer following a schema',
    value: {
      messages: [{ role: 'user', content: 'Name a city and its country.' }],
      responseFormat: {
        type: 'json_schema',
        jsonSchema: {
          name: 'city',
          schema: { type: 'object', properties: { city: { type: 'string' }, country: { type: 'string' } }, required: ['city', 'country'] },
        },
      },
      maxTokens: 200,
    },
  },
};

/** The organization's model serves these, or its fallback: no `model` in them. */
const ORGANIZATION_CHAT_EXAMPLES = {
  plain: { summary: "The organization's model", value: { messages: [{ role: 'user', content: 'Hi' }], maxTokens: 100, stream: false } },
  stream: { summary: 'Streamed (text/event-stream)', value: { messages: [{ role: 'user', content: 'Count to three' }], maxTokens: 100, stream: true } },
  override: {
    summary: "Another model than the organization's, for this call",
    value: { messages: [{ role: 'user', content: 'Hi' }], model: 'claude-3-5-sonnet', maxTokens: 100, stream: false },
  },
};

const STREAM_EXAMPLE = [
  'data: {"content":"One, "}',
  '',
  'data: {"content":"two, three."}',
  '',
  'data: {"model":"gpt-4o","upstreamModel":"gpt-4o-2024-08-06","usage":{"promptTokens":11,"completionTokens":6,"totalTokens":17},"finishReason":"stop"}',
  '',
  'data: [DONE]',
  '',
  '',
].join('\n');
const ORGANIZATION_STREAM_EXAMPLE = STREAM_EXAMPLE.replace('"finishReason":"stop"', '"finishReason":"stop","fallbackUsed":false');

/** A chat's 200: JSON, or with `stream: true` an event stream. */
function chatAnswers(type: Function, streamExample: string) {
  return ApiOkResponse({
    description:
      'With `stream` false or absent, the answer as JSON. With `stream: true`, `text/event-stream`: `data: {"content"}` and ' +
      '`data: {"toolCalls"}` deltas, one closing `data:` event with `model`, `usage` and `finishReason`, then `data: [DONE]`; ' +
      'a failure after the first byte ends it with `event: error` and the error body, without `[DONE]`.',
    content: {
      'application/json': { schema: { $ref: getSchemaPath(type) } },
      'text/event-stream': { schema: { type: 'string' }, example: streamExample },
    },
  });
}

/** null in an optional field means "not given"; nothing else than the validated fields goes upstream. */
function toChatRequest(body: ChatRequestDto): ChatRequest {
  const messages: ChatMessage[] = body.messages.map(({ role, content, toolCalls, toolCallId }) => ({
    role,
    content: content ?? null,
    ...(toolCalls && { toolCalls: toToolCalls(toolCalls) }),
    ...(toolCallId !== undefined && toolCallId !== null && { toolCallId }),
  }));
  const tools = body.tools ?? undefined;
  checkConversation(messages, tools, body.toolChoice ?? undefined, { toolCalls: 'toolCalls', toolCallId: 'toolCallId', toolChoice: 'toolChoice' });
  const format = body.responseFormat ?? undefined;
  return {
    messages,
    model: body.model ?? undefined,
    temperature: body.temperature ?? undefined,
    maxTokens: body.maxTokens ?? undefined,
    tools: toToolDefinitions(tools),
    toolChoice: body.toolChoice ?? undefined,
    parallelToolCalls: body.parallelToolCalls ?? undefined,
    responseFormat: format && toResponseFormat(format.type, format.jsonSchema),
    stop: body.stop ?? undefined,
    topP: body.topP ?? undefined,
    seed: body.seed ?? undefined,
    presencePenalty: body.presencePenalty ?? undefined,
    frequencyPenalty: body.frequencyPenalty ?? undefined,
  };
}

function chatBody(result: ChatResult, organization: boolean): ChatCompletionResultDto | OrgChatCompletionResultDto {
  const { content, toolCalls, model, upstreamModel, usage, finishReason, fallbackReason } = result;
  const body = { content, ...(toolCalls && { toolCalls }), model, upstreamModel, usage, finishReason };
  return organization ? { ...body, fallbackUsed: fallbackReason !== undefined, fallbackReason } : body;
}

@ApiTags('llm')
@ApiBearerAuth('api-key')
@ApiExtraModels(ChatRequestDto, EmbeddingsRequestDto, ChatCompletionResultDto, OrgChatCompletionResultDto)
@Controller('v1')
export class LlmController {
  constructor(
    private readonly llm: LlmService,
    private readonly modelCatalog: ModelCatalogService,
    private readonly responder: ChatResponder,
  ) {}

  @Post('chat')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Chat completion, plain or streamed (stream: true → text/event-stream)',
    description:
      'The model is `model`, or DEFAULT_CHAT_MODEL. Header x-llm-model names the model LiteLLM was asked for. ' +
      'Agents: `tools`, `toolChoice`, `responseFormat`; a tool call comes back in `toolCalls`, and its result goes in a ' +
      '`tool` message with `toolCallId`. If LiteLLM refuses the call before the first byte, the answer is an HTTP error.',
  })
  @ApiBody({ schema: { $ref: getSchemaPath(ChatRequestDto) }, examples: CHAT_EXAMPLES })
  @chatAnswers(ChatCompletionResultDto, STREAM_EXAMPLE)
  @ApiErrorResponses(...MODEL_CALL_ERRORS)
  // @Res() without passthrough: a streamed answer is written by hand, so this handler sends every answer itself.
  async chat(@Body() body: ChatRequestDto, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const abort = abortOnClientDisconnect(reply);
    const context = callContext(request, abort.signal);
    if (!body.stream) {
      const result = await this.llm.chatCompletion(toChatRequest(body), context);
      return void reply.headers({ ...result.rateLimitHeaders, ...servedByHeaders(result.model) }).send(chatBody(result, false));
    }
    const stream = await this.llm.streamChatCompletion(toChatRequest(body), context);
    await this.responder.sendStream(reply, stream, abort, nativeStreamFormat());
  }

  @Post('organizations/:id/chat')
  @HttpCode(200)
  @ApiOperation({
    summary: "Chat with the organization's model, falling back once to its fallback model on a non-retryable error",
    description:
      `Same body as POST /v1/chat; a \`model\` in it overrides the organization's for this call. ` +
      `Header ${MODEL_HEADER} names the model that served the call; ${FALLBACK_REASON_HEADER} is set when the ` +
      'fallback served it. Streams fall back only before their first byte. The organization\'s limits apply ' +
      '(x-ratelimit-* headers when it has per-minute limits), and the call is recorded in its usage.',
  })
  @ApiParam({ name: 'id', description: "The organization's id", example: EXAMPLE_ORGANIZATION_ID, type: String, format: 'uuid' })
  @ApiBody({ schema: { $ref: getSchemaPath(ChatRequestDto) }, examples: ORGANIZATION_CHAT_EXAMPLES })
  @chatAnswers(OrgChatCompletionResultDto, ORGANIZATION_STREAM_EXAMPLE)
  @ApiErrorResponses(...ORGANIZATION_CALL_ERRORS)
  async chatForOrganization(
    @Param('id', parseUuid) id: string,
    @Body() body: ChatRequestDto,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const abort = abortOnClientDisconnect(reply);
    const context = callContext(request, abort.signal);
    if (!body.stream) {
      const result = await this.llm.chatCompletionForOrg(id, toChatRequest(body), context);
      return void reply.headers({ ...result.rateLimitHeaders, ...servedByHeaders(result.model, result.fallbackReason) }).send(chatBody(result, true));
    }
    const stream = await this.llm.streamChatCompletionForOrg(id, toChatRequest(body), context);
    const closing = { fallbackUsed: stream.fallbackReason !== undefined, fallbackReason: stream.fallbackReason };
    await this.responder.sendStream(reply, stream, abort, nativeStreamFormat(closing));
  }

  @Post('embeddings')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Embeddings for one text, or for a batch when `input` is an array',
    description:
      'One text gives `embedding`, an array of texts gives `embeddings` in the same order. The model is `model`, or ' +
      'DEFAULT_EMBEDDING_MODEL; `dimensions` asks for shorter vectors (text-embedding-3 models).',
  })
  @ApiBody({
    schema: { $ref: getSchemaPath(EmbeddingsRequestDto) },
    examples: {
      one: { summary: 'One text', value: { input: 'The quick brown fox' } },
      batch: { summary: 'A batch, in one call', value: { input: ['first', 'second'], model: 'text-embedding-3-small' } },
      shorter: { summary: 'Shorter vectors', value: { input: 'The quick brown fox', dimensions: 256 } },
    },
  })
  @ApiExtraModels(EmbeddingResultDto, EmbeddingBatchResultDto)
  @ApiOkResponse({
    description: '`embedding` for one text, `embeddings` for a batch',
    schema: { oneOf: [{ $ref: getSchemaPath(EmbeddingResultDto) }, { $ref: getSchemaPath(EmbeddingBatchResultDto) }] },
  })
  @ApiErrorResponses(...MODEL_CALL_ERRORS)
  async embeddings(
    @Body() body: EmbeddingsRequestDto,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<EmbeddingResultDto | EmbeddingBatchResultDto> {
    const context = callContext(request, abortOnClientDisconnect(reply).signal);
    const options = { model: body.model ?? undefined, dimensions: body.dimensions ?? undefined };
    const result = Array.isArray(body.input)
      ? await this.llm.generateEmbeddings({ ...options, input: body.input }, context)
      : await this.llm.generateEmbedding(body.input, options, context);
    const { rateLimitHeaders, callId: _callId, ...answer } = result;
    void reply.headers({ ...rateLimitHeaders, ...servedByHeaders(answer.model) });
    return answer;
  }

  @Get('models')
  @ApiOperation({
    summary: 'The models LiteLLM serves (cached briefly)',
    description: 'Names usable as `model` in chat and embeddings calls, and as an organization\'s models. Cached for MODELS_CACHE_TTL_MS.',
  })
  @ApiOkResponse({ type: ModelListDto })
  @ApiErrorResponses('UNAUTHORIZED', 'UPSTREAM_AUTH_FAILED', 'UPSTREAM_ERROR', 'UPSTREAM_INVALID_RESPONSE', 'UPSTREAM_UNAVAILABLE', 'UPSTREAM_TIMEOUT')
  async models(): Promise<ModelListDto> {
    return { models: await this.modelCatalog.listModels() };
  }
}
