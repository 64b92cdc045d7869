import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type OpenAI from 'openai';
import { GatewayError } from '../common/errors/gateway-error';
import { Environment } from '../config/environment';
import { MetricsService } from '../metrics/metrics.service';
import { LlmClientProvider } from './llm-client.provider';
import { classifyUpstreamFailure, toUpstreamError, UpstreamErrorBody } from './litellm.errors';
import { ChatAnswer, ChatMessage, ChatRequest, ChatStreamPart, ContentPart, EmbeddingsAnswer, EmbeddingsRequest, ResponseFormat, UpstreamChatStream } from './litellm.types';
import { ModelCatalogService } from './model-catalog.service';
import { GatedRequestOptions, NotSentError, SendGate } from './send-gate';
import { ServerSentEvent, SseDecoder } from './sse-decoder';
import { invalidResponse, readChatChunk, readChatCompletion, readEmbeddings, StreamState } from './upstream-answers';
import type { UpstreamHeaders, UpstreamResponse } from './upstream-fetch';

/** How long the end of a body is waited for after [DONE] before its connection is dropped. */
const DRAIN_AFTER_DONE_MS = 2_000;

/** A call whose model is settled: the pipeline has resolved it. */
export type ResolvedChatRequest = ChatRequest & { model: string };
export type UpstreamOperation = 'chat' | 'chat_stream' | 'embeddings';

/** Built field by field: nothing the caller sent beyond what the gateway validated goes upstream. */
function toUpstreamContent(content: string | ContentPart[]): string | OpenAI.ChatCompletionContentPart[] {
  if (typeof content === 'string') return content;
  return content.map((part) =>
    part.type === 'text'
      ? { type: 'text', text: part.text }
      : { type: 'image_url', image_url: { url: part.imageUrl.url, ...(part.imageUrl.detail && { detail: part.imageUrl.detail }) } },
  );
}

function toUpstreamMessage(message: ChatMessage): OpenAI.ChatCompletionMessageParam {
  const content = message.content;
  switch (message.role) {
    case 'system':
      return { role: 'system', content: typeof content === 'string' ? content : textOf(content) };
    case 'user':
      return { role: 'user', content: toUpstreamContent(content ?? '') };
    case 'tool':
      return { role: 'tool', tool_call_id: message.toolCallId!, content: typeof content === 'string' ? content : textOf(content) };
    case 'assistant': {
      const toolCalls = message.toolCalls?.map(({ id, function: { name, arguments: args } }) => ({ id, type: 'function' as const, function: { name, arguments: args } }));
      const text = typeof content === 'string' ? content : content === null ? null : textOf(content);
      // With tool calls, empty text is sent as null: LiteLLM fills an empty text with a placeholder sentence of
      // its own for Anthropic models (which then reads it as part of the conversation).
      return { role: 'assistant', content: toolCalls && !text ? null : text, ...(toolCalls && { tool_calls: toolCalls }) };
    }
  }
}

/** System, tool and assistant messages take text only: their parts' text, joined. */
function textOf(parts: ContentPart[] | null): string {
  return (parts ?? []).map((part) => (part.type === 'text' ? part.text : '')).join('');
}

function toUpstreamResponseFormat(format: ResponseFormat): OpenAI.ChatCompletionCreateParams['response_format'] {
  if (format.type !== 'json_schema') return { type: format.type };
  const { name, description, schema, strict } = format.jsonSchema;
  return { type: 'json_schema', json_schema: { name, ...(description && { description }), ...(schema && { schema }), ...(strict !== undefined && { strict }) } };
}

function toUpstreamChat(request: ResolvedChatRequest): OpenAI.ChatCompletionCreateParamsNonStreaming {
  const { tools, toolChoice, responseFormat } = request;
  return {
    model: request.model,
    messages: request.messages.map(toUpstreamMessage),
    temperature: request.temperature,
    max_tokens: request.maxTokens,
    top_p: request.topP,
    seed: request.seed,
    presence_penalty: request.presencePenalty,
    frequency_penalty: request.frequencyPenalty,
    stop: request.stop,
    parallel_tool_calls: request.parallelToolCalls,
    ...(tools && {
      tools: tools.map(({ function: { name, description, parameters, strict } }) => ({
        type: 'function' as const,
        function: { name, ...(description !== undefined && { description }), ...(parameters && { parameters }), ...(strict !== undefined && { strict }) },
      })),
    }),
    ...(toolChoice && { tool_choice: typeof toolChoice === 'string' ? toolChoice : { type: 'function' as const, function: { name: toolChoice.function.name } } }),
    ...(responseFormat && { response_format: toUpstreamResponseFormat(responseFormat) }),
  };
}

/** Embedding models read newlines as content; OpenAI's own guidance is to replace them. */
function normalizeEmbeddingInput(text: string): string {
  return text.replace(/\r?\n|\r/g, ' ');
}

/** LiteLLM's x-litellm-response-cost, in USD, when it is a price. */
function costOf(headers: UpstreamHeaders): number | undefined {
  const cost = Number(headers.get('x-litellm-response-cost') ?? NaN);
  return Number.isFinite(cost) && cost >= 0 ? cost : undefined;
}

/**
 * The abort signal of one attempt: it fires when the caller goes away (REQUEST_ABORTED), when the deadline
 * passes (UPSTREAM_TIMEOUT), or when the gateway cuts the attempt; its reason says which. For a gated call
 * (send-gate.ts) the deadline and `startedAt` start when the gate opens: the wait is the pipeline's admission,
 * not LiteLLM's, and must neither shorten LLM_TIMEOUT_MS nor count as upstream time.
 */
class AttemptSignal {
  /** When the call went: now, or when its gate opened. */
  startedAt = performance.now();
  private readonly controller = new AbortController();
  private deadline: NodeJS.Timeout | undefined;
  private ended = false;
  /** The caller's reason when it gave one (shutdown, a caller that stopped reading), else: the caller left. */
  private readonly onCallerAbort = () =>
    this.abort(this.caller?.reason instanceof GatewayError ? this.caller.reason : new GatewayError('REQUEST_ABORTED', 'The caller went away'));

  constructor(
    private readonly caller: AbortSignal | undefined,
    deadlineMs: number,
    deadlineMessage: string,
    sendWhen?: SendGate,
  ) {
    if (caller?.aborted) this.onCallerAbort();
    else caller?.addEventListener('abort', this.onCallerAbort, { once: true });
    const start = () => {
      if (this.ended) return;
      this.startedAt = performance.now();
      this.deadline = setTimeout(() => this.abort(new GatewayError('UPSTREAM_TIMEOUT', deadlineMessage)), deadlineMs);
    };
    // Registered before the SDK waits for the gate, so the deadline runs before anything is sent.
    if (sendWhen) sendWhen.then(start, () => undefined);
    else start();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  abort(reason: GatewayError): void {
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }

  clearDeadline(): void {
    clearTimeout(this.deadline);
  }

  done(): void {
    this.ended = true;
    clearTimeout(this.deadline);
    this.caller?.removeEventListener('abort', this.onCallerAbort);
  }
}

/** The SDK's options for one attempt: its signal and, for a gated call, the gate it waits for. */
function requestOptions(attempt: AttemptSignal, sendWhen: SendGate | undefined): { signal: AbortSignal } & GatedRequestOptions {
  return sendWhen ? { signal: attempt.signal, sendWhen } : { signal: attempt.signal };
}

/**
 * The only code that talks to LiteLLM: chat, streamed chat and embeddings over the one openai SDK client,
 * each answer validated, each call timed out, measured and its failure named (litellm.errors.ts).
 */
@Injectable()
export class LiteLLMClient {
  private readonly client: OpenAI;
  private readonly timeoutMs: number;
  private readonly streamIdleTimeoutMs: number;

  constructor(
    clientProvider: LlmClientProvider,
    private readonly catalog: ModelCatalogService,
    private readonly metrics: MetricsService,
    config: ConfigService<Environment, true>,
  ) {
    this.client = clientProvider.client;
    this.timeoutMs = config.get('LLM_TIMEOUT_MS', { infer: true });
    this.streamIdleTimeoutMs = config.get('LLM_STREAM_IDLE_TIMEOUT_MS', { infer: true });
  }

  /** A plain chat. LLM_TIMEOUT_MS covers the whole answer, body included. */
  async chat(request: ResolvedChatRequest, signal?: AbortSignal, sendWhen?: SendGate): Promise<ChatAnswer> {
    const attempt = new AttemptSignal(signal, this.timeoutMs, `LiteLLM did not answer within ${this.timeoutMs} ms`, sendWhen);
    try {
      const { data, response } = await this.client.chat.completions
        .create(toUpstreamChat(request), requestOptions(attempt, sendWhen))
        .withResponse();
      const answer = readChatCompletion(data);
      if (request.responseFormat && request.responseFormat.type !== 'text') checkJsonAnswer(answer.content);
      const upstream = response as unknown as UpstreamResponse;
      this.record('chat', request.model, attempt.startedAt, 'success');
      return { ...answer, costUsd: costOf(upstream.headers), timeToFirstByteMs: upstream.receivedAt - attempt.startedAt };
    } catch (error) {
      if (error instanceof NotSentError) throw error;
      throw this.failed('chat', request.model, attempt.startedAt, toUpstreamError(error, attempt.signal));
    } finally {
      attempt.done();
    }
  }

  /**
   * A streamed chat, resolved once LiteLLM's headers have come and say text/event-stream (LiteLLM sends them
   * with its first chunk, so a refusal is an HTTP error here). LLM_TIMEOUT_MS covers the wait for them; then
   * LLM_STREAM_IDLE_TIMEOUT_MS bounds each silence of the upstream, and only of the upstream: time spent by
   * the consumer between reads (writing to a slow caller) is not counted.
   */
  async streamChat(request: ResolvedChatRequest, signal?: AbortSignal, sendWhen?: SendGate): Promise<UpstreamChatStream> {
    const attempt = new AttemptSignal(signal, this.timeoutMs, `LiteLLM did not start the stream within ${this.timeoutMs} ms`, sendWhen);
    let response: UpstreamResponse;
    try {
      response = (await this.client.chat.completions
        .create({ ...toUpstreamChat(request), stream: true, stream_options: { include_usage: true } }, requestOptions(attempt, sendWhen))
        .asResponse()) as unknown as UpstreamResponse;
      const contentType = response.headers.get('content-type') ?? '';
      if (!contentType.startsWith('text/event-stream')) {
        discard(response.body);
        throw invalidResponse(`a streamed call answered with ${contentType || 'no content type'} instead of text/event-stream`);
      }
    } catch (error) {
      attempt.done();
      if (error instanceof NotSentError) throw error;
      throw this.failed('chat_stream', request.model, attempt.startedAt, toUpstreamError(error, attempt.signal));
    }
    attempt.clearDeadline();
    const { startedAt } = attempt;
    const metering = { costUsd: costOf(response.headers), timeToFirstByteMs: response.receivedAt - startedAt };
    return { metering, reads: () => this.readStream(response, attempt, metering, request.model, startedAt) };
  }

  private async *readStream(
    response: UpstreamResponse,
    attempt: AttemptSignal,
    metering: UpstreamChatStream['metering'],
    model: string,
    startedAt: number,
  ): AsyncGenerator<ChatStreamPart[], void, undefined> {
    const body = response.body;
    const reader = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const decoder = new SseDecoder();
    const events: ServerSentEvent[] = [];
    const state: StreamState = {};
    let waitingForUpstream = false;
    let sawDone = false;
    let outcome: string | undefined;
    const idle = setTimeout(() => {
      if (waitingForUpstream) {
        attempt.abort(new GatewayError('UPSTREAM_TIMEOUT', `LiteLLM sent nothing for ${this.streamIdleTimeoutMs} ms in the middle of a stream`));
      }
    }, this.streamIdleTimeoutMs);
    try {
      while (!sawDone) {
        waitingForUpstream = true;
        idle.refresh();
        let read: IteratorResult<Buffer>;
        try {
          read = await reader.next();
        } catch (error) {
          if (attempt.signal.aborted) throw error;
          // The connection broke: what came so far is not the whole answer.
          throw new GatewayError('UPSTREAM_STREAM_TRUNCATED', 'The stream from LiteLLM broke off before the answer was complete');
        }
        waitingForUpstream = false;
        if (read.done) break;
        events.length = 0;
        decode(decoder, read.value, events);
        const parts: ChatStreamPart[] = [];
        let failure: GatewayError | undefined;
        for (const event of events) {
          if (event.data === '[DONE]') {
            sawDone = true;
            break;
          }
          const chunk = parseChunk(event.data);
          const error = (chunk as { error?: UpstreamErrorBody }).error;
          if (error !== undefined) {
            failure = classifyUpstreamFailure(undefined, typeof error === 'object' && error !== null ? error : { message: String(error) });
            break;
          }
          const part = readChatChunk(chunk, state);
          if (part) parts.push(part);
        }
        metering.upstreamModel = state.upstreamModel;
        metering.usage = state.usage;
        metering.cachedPromptTokens = state.cachedPromptTokens;
        metering.costUsd ??= state.costUsd;
        metering.finishReason = state.finishReason;
        // What came before an error in the same read is the caller's too: first the parts, then the error.
        if (parts.length > 0) yield parts;
        if (failure) throw failure;
      }
      if (!state.finishReason && !sawDone) {
        throw new GatewayError('UPSTREAM_STREAM_TRUNCATED', 'The stream from LiteLLM ended before the answer was complete');
      }
      // [DONE] is the end, whether or not the body has ended yet: the caller is not kept waiting for it.
      if (sawDone) drainInBackground(reader, body);
      outcome = 'success';
    } catch (error) {
      const failure = toUpstreamError(error, attempt.signal);
      // After a finish reason the answer is whole: a silence or a break that follows loses at most the usage
      // chunk, and the caller gets the answer. A caller who left is another matter.
      if (state.finishReason && failure instanceof GatewayError && failure.code !== 'REQUEST_ABORTED') {
        outcome = 'success';
        discard(body);
        return;
      }
      outcome = failure instanceof GatewayError ? failure.code : 'INTERNAL_ERROR';
      throw failure;
    } finally {
      clearTimeout(idle);
      attempt.done();
      // The consumer stopped early (the caller left): the rest is not wanted, and the socket is not reusable.
      if (outcome === undefined) outcome = attempt.signal.reason instanceof GatewayError ? attempt.signal.reason.code : 'REQUEST_ABORTED';
      if (outcome !== 'success') discard(body);
      this.record('chat_stream', model, startedAt, outcome);
    }
  }

  async embed({ model, input, dimensions }: EmbeddingsRequest, signal?: AbortSignal, sendWhen?: SendGate): Promise<EmbeddingsAnswer> {
    const attempt = new AttemptSignal(signal, this.timeoutMs, `LiteLLM did not answer within ${this.timeoutMs} ms`, sendWhen);
    try {
      const { data, response } = await this.client.embeddings
        .create(
          // The SDK's default base64 path costs CPU and garbles LiteLLM's mock vectors.
          { model, input: input.map(normalizeEmbeddingInput), encoding_format: 'float', ...(dimensions !== undefined && { dimensions }) },
          requestOptions(attempt, sendWhen),
        )
        .withResponse();
      const answer = readEmbeddings(data, input.length, dimensions);
      const upstream = response as unknown as UpstreamResponse;
      this.record('embeddings', model, attempt.startedAt, 'success');
      return { ...answer, costUsd: costOf(upstream.headers), timeToFirstByteMs: upstream.receivedAt - attempt.startedAt };
    } catch (error) {
      if (error instanceof NotSentError) throw error;
      throw this.failed('embeddings', model, attempt.startedAt, toUpstreamError(error, attempt.signal));
    } finally {
      attempt.done();
    }
  }

  /** Counts a failed call; returns what to throw (a GatewayError, or a bug as it is). */
  private failed(operation: UpstreamOperation, model: string, startedAt: number, failure: unknown): unknown {
    this.record(operation, model, startedAt, failure instanceof GatewayError ? failure.code : 'INTERNAL_ERROR');
    return failure;
  }

  private record(operation: UpstreamOperation, model: string, startedAt: number, outcome: string): void {
    this.metrics.recordUpstreamCall(operation, this.catalog.metricLabel(model), startedAt, outcome);
  }
}

/**
 * A call that asked for JSON (json_object or json_schema) gets JSON or a 502: LiteLLM does not pass json_object
 * on to every provider (Anthropic gets nothing), and a caller that parses the answer must not get prose.
 */
function checkJsonAnswer(content: string | null): void {
  if (content === null) return; // only tool calls, or a refusal: nothing to parse
  try {
    JSON.parse(content);
  } catch {
    throw invalidResponse('the call asked for JSON (responseFormat) and the model answered with text that is not JSON');
  }
}

/** An event-stream line too long to be an answer is a broken upstream, not a bug of ours. */
function decode(decoder: SseDecoder, bytes: Buffer, events: ServerSentEvent[]): void {
  try {
    decoder.push(bytes, events);
  } catch (error) {
    if (error instanceof RangeError) throw invalidResponse(error.message);
    throw error;
  }
}

/** After [DONE]: the rest of the body (normally just its end) is read in the background, so the connection can be reused; a body that does not end soon is dropped. */
function drainInBackground(reader: AsyncIterator<Buffer>, body: UpstreamResponse['body']): void {
  const timer = setTimeout(() => discard(body), DRAIN_AFTER_DONE_MS);
  void (async () => {
    try {
      while (!(await reader.next()).done);
    } catch {
      // dropped by the timer, or broken: either way nothing is waiting for it
    } finally {
      clearTimeout(timer);
    }
  })();
}

/** Drops a body that is not wanted; its socket is not reused. */
function discard(body: UpstreamResponse['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

function parseChunk(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    throw invalidResponse('a stream event that is not JSON');
  }
}
