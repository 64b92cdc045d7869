import { Body, Controller, Get, Headers, HttpCode, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiExtraModels, ApiHeader, ApiOkResponse, ApiOperation, ApiTags, getSchemaPath } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiOpenAiErrorResponses } from '../common/errors/error-examples';
import { GatewayError } from '../common/errors/gateway-error';
import type { ChatMessage, ChatRequest } from '../litellm/litellm.types';
import { ModelCatalogService } from '../litellm/model-catalog.service';
import { ChatResult, LlmService } from '../routing/llm.service';
import { abortOnClientDisconnect, callContext, ChatResponder, openAiStreamFormat, servedByHeaders } from './chat-responder';
import { checkConversation, toResponseFormat, toToolCalls, toToolDefinitions } from './dto/chat-shapes';
import { OpenAiChatRequestDto, OpenAiEmbeddingsRequestDto, ORGANIZATION_DEFAULT_MODEL, toContentPart } from './dto/openai.dto';
// With x-organization-id, an OpenAI-style call is an organization's call: it can be answered all of their codes.
import { ORGANIZATION_CALL_ERRORS } from './model-call-errors';

const ORGANIZATION_HEADER = 'x-organization-id';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** x-organization-id: an organization's id, or nothing. */
function organizationOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (!UUID.test(header)) throw new GatewayError('VALIDATION_FAILED', `${ORGANIZATION_HEADER} must be a UUID`, undefined, ORGANIZATION_HEADER);
  return header;
}

/**
 * The model a call asks for: `organization-default` (with an organization) means the organization's model,
 * which the pipeline fills in; any other served model overrides it for the call, as on the native route.
 */
function modelFor(model: string, organizationId: string | undefined): string | undefined {
  if (model !== ORGANIZATION_DEFAULT_MODEL) return model;
  if (!organizationId) throw new GatewayError('VALIDATION_FAILED', `model ${ORGANIZATION_DEFAULT_MODEL} needs an ${ORGANIZATION_HEADER} header`, undefined, 'model');
  return undefined;
}

/** OpenAI's request in the gateway's words: field by field, so nothing unchecked goes on. */
function toChatRequest(body: OpenAiChatRequestDto, organizationId: string | undefined): ChatRequest {
  const messages: ChatMessage[] = body.messages.map(({ role, content, tool_calls, tool_call_id }) => ({
    role: role === 'developer' ? 'system' : role,
    content: content === null || content === undefined ? null : typeof content === 'string' ? content : content.map(toContentPart),
    ...(tool_calls && { toolCalls: toToolCalls(tool_calls) }),
    ...(tool_call_id !== undefined && tool_call_id !== null && { toolCallId: tool_call_id }),
  }));
  const tools = body.tools ?? undefined;
  checkConversation(messages, tools, body.tool_choice ?? undefined, { toolCalls: 'tool_calls', toolCallId: 'tool_call_id', toolChoice: 'tool_choice' });
  const format = body.response_format ?? undefined;
  return {
    messages,
    model: modelFor(body.model, organizationId),
    temperature: body.temperature ?? undefined,
    maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
    tools: toToolDefinitions(tools),
    toolChoice: body.tool_choice ?? undefined,
    parallelToolCalls: body.parallel_tool_calls ?? undefined,
    responseFormat: format && toResponseFormat(format.type, format.json_schema),
    stop: body.stop ?? undefined,
    topP: body.top_p ?? undefined,
    seed: body.seed ?? undefined,
    presencePenalty: body.presence_penalty ?? undefined,
    frequencyPenalty: body.frequency_penalty ?? undefined,
  };
}

/** OpenAI's chat.completion. */
function completion(result: ChatResult) {
  const { callId, content, toolCalls, model, usage, finishReason } = result;
  return {
    id: `chatcmpl-${callId}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content, ...(toolCalls && { tool_calls: toolCalls }), refusal: null },
        finish_reason: finishReason ?? 'stop',
        logprobs: null,
      },
    ],
    usage: { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens, total_tokens: usage.totalTokens },
  };
}

/** Little-endian float32, as OpenAI's base64 encoding_format is (what its SDKs ask for by default, and decode). */
function base64Vector(vector: number[]): string {
  return Buffer.from(new Float32Array(vector).buffer).toString('base64');
}

/**
 * OpenAI's API on the gateway's pipeline, for stock SDKs and the frameworks on them: a client sets only `baseURL`
 * (…/openai/v1) and `apiKey` (a gateway key). Same authentication, organization routing (x-organization-id),
 * fallback, usage ledger and limits as the native routes; OpenAI's request, answer, chunk and error shapes.
 */
@ApiTags('openai')
@ApiBearerAuth('api-key')
@ApiHeader({ name: ORGANIZATION_HEADER, required: false, description: "An organization's id: its model (with model organization-default), fallback, limits and usage" })
@Controller('openai/v1')
export class OpenAiController {
  constructor(
    private readonly llm: LlmService,
    private readonly modelCatalog: ModelCatalogService,
    private readonly responder: ChatResponder,
  ) {}

  @Post('chat/completions')
  @HttpCode(200)
  @ApiOperation({
    summary: "OpenAI's chat completions (plain and streamed), for stock SDKs",
    description:
      "OpenAI's request and answer. With x-organization-id, `model: \"organization-default\"` is the organization's model " +
      'and its fallback, limits and usage apply. Errors come in OpenAI\'s envelope, the gateway\'s code in `code`.',
  })
  @ApiExtraModels(OpenAiChatRequestDto)
  @ApiBody({
    schema: { $ref: getSchemaPath(OpenAiChatRequestDto) },
    examples: {
      plain: { summary: 'A short plain answer', value: { model: 'gpt-4o', messages: [{ role: 'user', content: 'Say hi' }], max_tokens: 100 } },
      stream: {
        summary: 'Streamed, usage last',
        value: { model: 'gpt-4o', messages: [{ role: 'user', content: 'Count to three' }], stream: true, stream_options: { include_usage: true } },
      },
    },
  })
  @ApiOkResponse({
    description: "OpenAI's chat.completion; with `stream: true`, its chat.completion.chunk events, then `data: [DONE]`.",
    content: {
      'application/json': {
        schema: { type: 'object' },
        example: {
          id: 'chatcmpl-3c0a7a2e-5b1d-4f7e-9a55-2f1c3b8d6e10',
          object: 'chat.completion',
          created: 1764442800,
          model: 'gpt-4o',
          choices: [{ index: 0, message: { role: 'assistant', content: 'Hi!', refusal: null }, finish_reason: 'stop', logprobs: null }],
          usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 },
        },
      },
      'text/event-stream': {
        schema: { type: 'string' },
        example:
          'data: {"id":"chatcmpl-3c0a7a2e-5b1d-4f7e-9a55-2f1c3b8d6e10","object":"chat.completion.chunk","created":1764442800,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"One, two, three."},"finish_reason":null}]}\n\n' +
          'data: {"id":"chatcmpl-3c0a7a2e-5b1d-4f7e-9a55-2f1c3b8d6e10","object":"chat.completion.chunk","created":1764442800,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n' +
          'data: [DONE]\n\n',
      },
    },
  })
  @ApiOpenAiErrorResponses(...ORGANIZATION_CALL_ERRORS)
  async chatCompletions(
    @Body() body: OpenAiChatRequestDto,
    @Headers(ORGANIZATION_HEADER) organizationHeader: string | undefined,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const organizationId = organizationOf(organizationHeader);
    const chat = toChatRequest(body, organizationId);
    const abort = abortOnClientDisconnect(reply);
    const context = callContext(request, abort.signal);
    if (!body.stream) {
      const result = organizationId ? await this.llm.chatCompletionForOrg(organizationId, chat, context) : await this.llm.chatCompletion(chat, context);
      return void reply.headers({ ...result.rateLimitHeaders, ...servedByHeaders(result.model, result.fallbackReason) }).send(completion(result));
    }
    const stream = organizationId ? await this.llm.streamChatCompletionForOrg(organizationId, chat, context) : await this.llm.streamChatCompletion(chat, context);
    const format = openAiStreamFormat({ id: `chatcmpl-${stream.callId}`, model: stream.model }, body.stream_options?.include_usage === true);
    await this.responder.sendStream(reply, stream, abort, format);
  }

  @Post('embeddings')
  @HttpCode(200)
  @ApiOperation({
    summary: "OpenAI's embeddings (float or base64), for stock SDKs",
    description: "OpenAI's request and list answer; `encoding_format` base64 (the SDKs' default) is little-endian float32.",
  })
  @ApiOkResponse({ description: '{"object":"list","data":[{"object":"embedding","index":0,"embedding":[...]}],"model","usage":{"prompt_tokens","total_tokens"}}' })
  @ApiOpenAiErrorResponses(...ORGANIZATION_CALL_ERRORS)
  async embeddings(
    @Body() body: OpenAiEmbeddingsRequestDto,
    @Headers(ORGANIZATION_HEADER) organizationHeader: string | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const organizationId = organizationOf(organizationHeader);
    const input = Array.isArray(body.input) ? body.input : [body.input];
    const result = await this.llm.generateEmbeddings(
      { input, model: body.model, dimensions: body.dimensions ?? undefined, organizationId },
      callContext(request, abortOnClientDisconnect(reply).signal),
    );
    void reply.headers({ ...result.rateLimitHeaders, ...servedByHeaders(result.model) });
    const base64 = body.encoding_format === 'base64';
    return {
      object: 'list',
      data: result.embeddings.map((vector, index) => ({ object: 'embedding', index, embedding: base64 ? base64Vector(vector) : vector })),
      model: result.model,
      usage: { prompt_tokens: result.usage.promptTokens, total_tokens: result.usage.totalTokens },
    };
  }

  @Get('models')
  @ApiOperation({ summary: "The models LiteLLM serves, in OpenAI's list shape", description: 'What the SDKs\' `models.list()` reads.' })
  @ApiOpenAiErrorResponses('UNAUTHORIZED', 'UPSTREAM_AUTH_FAILED', 'UPSTREAM_ERROR', 'UPSTREAM_INVALID_RESPONSE', 'UPSTREAM_UNAVAILABLE', 'UPSTREAM_TIMEOUT')
  @ApiOkResponse({ description: '{"object":"list","data":[{"id","object":"model","created","owned_by"}]}' })
  async models() {
    const models = await this.modelCatalog.listModels();
    return { object: 'list', data: models.map((id) => ({ id, object: 'model', created: 0, owned_by: 'llm-gateway' })) };
  }
}
