import { Body, Controller, Get, HttpCode, Param, Post, Res } from '@nestjs/common';
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
import type { FastifyReply } from 'fastify';
import { ErrorResponseDto } from '../common/error-response';
import { MODEL_HEADER } from '../common/request-observer';
import { parseUuid } from '../common/validation';
import { ShutdownService } from '../lifecycle/shutdown.service';
import { abortOnClientDisconnect, sendChatEventStream } from './chat-event-stream';
import { ChatRequestDto } from './dto/chat-request.dto';
import { EmbeddingsRequestDto } from './dto/embeddings-request.dto';
import {
  ChatCompletionResultDto,
  EmbeddingBatchResultDto,
  EmbeddingResultDto,
  ModelListDto,
  OrgChatCompletionResultDto,
} from './dto/llm-responses.dto';
import { LlmService } from './llm.service';
import { ModelCatalogService } from './model-catalog.service';

export const FALLBACK_REASON_HEADER = 'x-llm-fallback-reason';

/** null in an optional field means "not given"; it is never sent upstream. */
function chatOptions(body: ChatRequestDto, signal: AbortSignal) {
  return {
    model: body.model ?? undefined,
    temperature: body.temperature ?? undefined,
    maxTokens: body.maxTokens ?? undefined,
    signal,
  };
}

@ApiTags('llm')
@ApiBearerAuth('api-key')
@ApiUnauthorizedResponse({ type: ErrorResponseDto, description: 'Missing, malformed or unknown API key' })
@ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Invalid body (each bad field named), or MODEL_NOT_FOUND' })
@ApiTooManyRequestsResponse({ type: ErrorResponseDto, description: 'Rate limited upstream; Retry-After passed on' })
@ApiBadGatewayResponse({ type: ErrorResponseDto, description: 'LiteLLM or the provider failed, or refused our key' })
@ApiServiceUnavailableResponse({ type: ErrorResponseDto, description: 'LiteLLM is unreachable' })
@ApiGatewayTimeoutResponse({ type: ErrorResponseDto, description: 'LiteLLM did not answer in time' })
@Controller('v1')
export class LlmController {
  constructor(
    private readonly llm: LlmService,
    private readonly modelCatalog: ModelCatalogService,
    private readonly shutdown: ShutdownService,
  ) {}

  @Post('chat')
  @HttpCode(200)
  @ApiOperation({ summary: 'Chat completion, plain or streamed (stream: true → text/event-stream)' })
  @ApiOkResponse({ type: ChatCompletionResultDto })
  @ApiPayloadTooLargeResponse({ type: ErrorResponseDto })
  // @Res() without passthrough: a streamed answer is written by hand, so this handler sends every answer itself.
  async chat(@Body() body: ChatRequestDto, @Res() reply: FastifyReply): Promise<void> {
    const abort = abortOnClientDisconnect(reply);
    const options = chatOptions(body, abort.signal);
    if (!body.stream) {
      const result: ChatCompletionResultDto = await this.llm.chatCompletion(body.messages, options);
      return void reply.header(MODEL_HEADER, result.model).send(result);
    }
    await sendChatEventStream({
      reply,
      events: this.llm.streamChatCompletion(body.messages, options),
      abort,
      headers: { [MODEL_HEADER]: this.llm.chatModelFor(options.model) },
      trackStream: (end) => this.shutdown.trackStream(end),
    });
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
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const abort = abortOnClientDisconnect(reply);
    const options = chatOptions(body, abort.signal);
    if (!body.stream) {
      const result: OrgChatCompletionResultDto = await this.llm.chatCompletionForOrg(id, body.messages, options);
      void reply.header(MODEL_HEADER, result.model);
      if (result.fallbackReason) void reply.header(FALLBACK_REASON_HEADER, result.fallbackReason);
      return void reply.send(result);
    }
    const stream = await this.llm.streamChatCompletionForOrg(id, body.messages, options);
    const headers: Record<string, string> = { [MODEL_HEADER]: stream.model };
    if (stream.fallbackReason) headers[FALLBACK_REASON_HEADER] = stream.fallbackReason;
    await sendChatEventStream({
      reply,
      events: stream.events,
      abort,
      headers,
      trackStream: (end) => this.shutdown.trackStream(end),
    });
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
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<EmbeddingResultDto | EmbeddingBatchResultDto> {
    const result = Array.isArray(body.input)
      ? await this.llm.generateEmbeddings(body.input, body.model ?? undefined)
      : await this.llm.generateEmbedding(body.input, body.model ?? undefined);
    void reply.header(MODEL_HEADER, result.model);
    return result;
  }

  @Get('models')
  @ApiOperation({ summary: 'The models LiteLLM serves (cached briefly)' })
  @ApiOkResponse({ type: ModelListDto })
  async models(): Promise<ModelListDto> {
    return { models: await this.modelCatalog.listModels() };
  }
}
