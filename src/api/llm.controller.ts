import { Body, Controller, Get, HttpCode, Param, Post, Req, Res } from '@nestjs/common';
import {
  ApiBadGatewayResponse,
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiExtraModels,
  ApiGatewayTimeoutResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiPayloadTooLargeResponse,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiTooManyRequestsResponse,
  ApiUnauthorizedResponse,
  getSchemaPath,
} from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthenticatedRequest } from '../auth/api-key.guard';
import { ErrorResponseDto } from '../common/errors/error-response';
import { parseUuid } from '../common/validation';
import type { ChatMessage, ChatRequest } from '../litellm/litellm.types';
import { ModelCatalogService } from '../litellm/model-catalog.service';
import { CallContext, ChatResult, LlmService } from '../routing/llm.service';
import { MODEL_HEADER } from '../common/model-name';
import { abortOnClientDisconnect, ChatResponder, FALLBACK_REASON_HEADER, nativeStreamFormat, servedByHeaders } from './chat-responder';
import { ChatRequestDto } from './dto/chat-request.dto';
import { checkConversation } from './dto/chat-shapes';
import { EmbeddingsRequestDto } from './dto/embeddings-request.dto';
import {
  ChatCompletionResultDto,
  EmbeddingBatchResultDto,
  EmbeddingResultDto,
  ModelListDto,
  OrgChatCompletionResultDto,
} from './dto/llm-responses.dto';

/** null in an optional field means "not given"; nothing else than the validated fields goes upstream. */
function toChatRequest(body: ChatRequestDto): ChatRequest {
  const messages: ChatMessage[] = body.messages.map(({ role, content, toolCalls, toolCallId }) => ({
    role,
    content: content ?? null,
    ...(toolCalls && { toolCalls: toolCalls.map(({ id, function: { name, arguments: args } }) => ({ id, type: 'function' as const, function: { name, arguments: args } })) }),
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
    tools: tools?.map(({ function: { name, description, parameters, strict } }) => ({
      type: 'function' as const,
      function: { name, description: description ?? undefined, parameters: parameters ?? undefined, strict: strict ?? undefined },
    })),
    toolChoice: body.toolChoice ?? undefined,
    parallelToolCalls: body.parallelToolCalls ?? undefined,
    responseFormat: format && (format.type === 'json_schema' ? { type: 'json_schema', jsonSchema: { ...format.jsonSchema! } } : { type: format.type }),
    stop: body.stop ?? undefined,
    topP: body.topP ?? undefined,
    seed: body.seed ?? undefined,
    presencePenalty: body.presencePenalty ?? undefined,
    frequencyPenalty: body.frequencyPenalty ?? undefined,
  };
}

function callContext(request: FastifyRequest, signal?: AbortSignal): CallContext {
  return {
    requestId: String(request.id),
    callerKeyId: (request as AuthenticatedRequest).caller?.keyId,
    route: request.routeOptions.url ?? 'unknown',
    signal,
  };
}

function chatBody(result: ChatResult, organization: boolean): ChatCompletionResultDto | OrgChatCompletionResultDto {
  const { content, toolCalls, model, upstreamModel, usage, finishReason, fallbackReason } = result;
  const body = { content, ...(toolCalls && { toolCalls }), model, upstreamModel, usage, finishReason };
  return organization ? { ...body, fallbackUsed: fallbackReason !== undefined, fallbackReason } : body;
}

@ApiTags('llm')
@ApiBearerAuth('api-key')
@ApiUnauthorizedResponse({ type: ErrorResponseDto, description: 'Missing, malformed or unknown API key' })
@ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Invalid body (each bad field named), or MODEL_NOT_FOUND' })
@ApiTooManyRequestsResponse({ type: ErrorResponseDto, description: 'Rate limited upstream; Retry-After passed on' })
@ApiBadGatewayResponse({ type: ErrorResponseDto, description: 'LiteLLM or the provider failed, answered something invalid, or refused our key' })
@ApiServiceUnavailableResponse({ type: ErrorResponseDto, description: 'LiteLLM is unreachable' })
@ApiGatewayTimeoutResponse({ type: ErrorResponseDto, description: 'LiteLLM did not answer in time' })
@Controller('v1')
export class LlmController {
  constructor(
    private readonly llm: LlmService,
    private readonly modelCatalog: ModelCatalogService,
    private readonly responder: ChatResponder,
  ) {}

  @Post('chat')
  @HttpCode(200)
  @ApiOperation({ summary: 'Chat completion, plain or streamed (stream: true → text/event-stream)' })
  @ApiOkResponse({ type: ChatCompletionResultDto })
  @ApiPayloadTooLargeResponse({ type: ErrorResponseDto })
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
      'fallback served it. Streams fall back only before their first byte.',
  })
  @ApiOkResponse({ type: OrgChatCompletionResultDto })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such organization' })
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
  @ApiOperation({ summary: 'Embeddings for one text, or for a batch when `input` is an array' })
  @ApiExtraModels(EmbeddingResultDto, EmbeddingBatchResultDto)
  @ApiOkResponse({
    schema: { oneOf: [{ $ref: getSchemaPath(EmbeddingResultDto) }, { $ref: getSchemaPath(EmbeddingBatchResultDto) }] },
  })
  @ApiPayloadTooLargeResponse({ type: ErrorResponseDto })
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
  @ApiOperation({ summary: 'The models LiteLLM serves (cached briefly)' })
  @ApiOkResponse({ type: ModelListDto })
  async models(): Promise<ModelListDto> {
    return { models: await this.modelCatalog.listModels() };
  }
}
