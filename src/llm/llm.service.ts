import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type OpenAI from 'openai';
import { APIUserAbortError } from 'openai';
import { Environment } from '../config/environment';
import { LlmClientProvider } from './llm-client.provider';
import { MetricsService } from '../metrics/metrics.service';
import { OrganizationsService } from '../organizations/organizations.service';
import { LlmError, LlmErrorCode, toLlmError } from './llm.errors';
import {
  ChatCompletionResult,
  ChatMessage,
  ChatOptions,
  ChatStreamEvent,
  EmbeddingBatchResult,
  EmbeddingResult,
  OrgChatCompletionResult,
  OrgChatStream,
  TokenUsage,
} from './llm.types';

type UpstreamUsage = OpenAI.CompletionUsage | null | undefined;

function toTokenUsage(usage: UpstreamUsage): TokenUsage {
  return {
    promptTokens: usage?.prompt_tokens ?? 0,
    completionTokens: usage?.completion_tokens ?? 0,
    totalTokens: usage?.total_tokens ?? 0,
  };
}

/** Built field by field: nothing the caller sent beyond role and content goes upstream. */
function toUpstreamMessages(messages: ChatMessage[]): OpenAI.ChatCompletionMessageParam[] {
  return messages.map(({ role, content }) => ({ role, content }));
}

/** Embedding models read newlines as content; OpenAI's own guidance is to replace them. */
function normalizeEmbeddingInput(text: string): string {
  return text.replace(/\r?\n|\r/g, ' ');
}

/** Waits for a stream's first event, so a refusal surfaces here; then replays it ahead of the rest. */
async function startStream(events: AsyncGenerator<ChatStreamEvent>): Promise<AsyncGenerator<ChatStreamEvent>> {
  const first = await events.next();
  return (async function* () {
    if (!first.done) yield first.value;
    yield* events;
  })();
}

@Injectable()
export class LlmService {
  private readonly logger = new Logger(LlmService.name);
  private readonly client: OpenAI;
  private readonly defaultChatModel: string;
  private readonly defaultEmbeddingModel: string;
  private readonly streamIdleTimeoutMs: number;

  constructor(
    clientProvider: LlmClientProvider,
    config: ConfigService<Environment, true>,
    private readonly organizations: OrganizationsService,
    private readonly metrics: MetricsService,
  ) {
    this.client = clientProvider.client;
    this.defaultChatModel = config.get('DEFAULT_CHAT_MODEL', { infer: true });
    this.defaultEmbeddingModel = config.get('DEFAULT_EMBEDDING_MODEL', { infer: true });
    this.streamIdleTimeoutMs = config.get('LLM_STREAM_IDLE_TIMEOUT_MS', { infer: true });
  }

  /** The model a chat call asks LiteLLM for. */
  chatModelFor(requested?: string): string {
    return requested ?? this.defaultChatModel;
  }

  async chatCompletion(messages: ChatMessage[], options: ChatOptions = {}): Promise<ChatCompletionResult> {
    const model = this.chatModelFor(options.model);
    const startedAt = performance.now();
    try {
      const completion = await this.client.chat.completions.create(
        {
          model,
          messages: toUpstreamMessages(messages),
          temperature: options.temperature,
          max_tokens: options.maxTokens,
        },
        { signal: options.signal },
      );
      this.metrics.recordUpstreamCall('chat', model, startedAt, 'success');
      return {
        content: completion.choices[0]?.message?.content ?? '',
        model: completion.model || model,
        usage: toTokenUsage(completion.usage),
      };
    } catch (error) {
      throw this.failed('chat', model, startedAt, error);
    }
  }

  /**
   * Yields content deltas, then one `done` event with the model and the usage. Errors are LlmErrors, whether
   * LiteLLM refused the request or failed in the middle of the stream.
   */
  async *streamChatCompletion(messages: ChatMessage[], options: ChatOptions = {}): AsyncGenerator<ChatStreamEvent> {
    const requested = this.chatModelFor(options.model);
    let model = requested;
    let usage: UpstreamUsage;
    const startedAt = performance.now();
    // LLM_TIMEOUT_MS covers the wait for the first byte; a stream that goes silent after it is cut here.
    const idle = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, idle.signal]) : idle.signal;
    let idleTimer: NodeJS.Timeout | undefined;
    try {
      const stream = await this.client.chat.completions.create(
        {
          model,
          messages: toUpstreamMessages(messages),
          temperature: options.temperature,
          max_tokens: options.maxTokens,
          stream: true,
          stream_options: { include_usage: true },
        },
        { signal },
      );
      idleTimer = setTimeout(() => idle.abort(), this.streamIdleTimeoutMs);
      for await (const chunk of stream) {
        idleTimer.refresh();
        if (chunk.model) model = chunk.model;
        if (chunk.usage) usage = chunk.usage;
        // The usage chunk may come with an empty `choices` or with one: handle both.
        const content = chunk.choices?.[0]?.delta?.content;
        if (content) yield { type: 'delta', content };
      }
      if (idle.signal.aborted && !options.signal?.aborted) {
        throw new LlmError(LlmErrorCode.UPSTREAM_TIMEOUT, `LiteLLM sent nothing for ${this.streamIdleTimeoutMs} ms in the middle of a stream`);
      }
      // The SDK ends an aborted stream quietly, as if it were complete: it is not.
      if (signal.aborted) throw new APIUserAbortError();
    } catch (error) {
      throw this.failed('chat_stream', requested, startedAt, error);
    } finally {
      clearTimeout(idleTimer);
    }
    this.metrics.recordUpstreamCall('chat_stream', requested, startedAt, 'success');
    yield { type: 'done', model, usage: toTokenUsage(usage) };
  }

  async generateEmbedding(text: string, model?: string): Promise<EmbeddingResult> {
    const result = await this.generateEmbeddings([text], model);
    return { embedding: result.embeddings[0], model: result.model, dimensions: result.dimensions };
  }

  async generateEmbeddings(texts: string[], model = this.defaultEmbeddingModel): Promise<EmbeddingBatchResult> {
    const startedAt = performance.now();
    try {
      const response = await this.client.embeddings.create({
        model,
        input: texts.map(normalizeEmbeddingInput),
        // The SDK's default base64 path costs CPU and garbles LiteLLM's mock vectors.
        encoding_format: 'float',
      });
      this.metrics.recordUpstreamCall('embeddings', model, startedAt, 'success');
      const embeddings = [...response.data].sort((a, b) => a.index - b.index).map((item) => item.embedding);
      return { embeddings, model: response.model || model, dimensions: embeddings[0]?.length ?? 0 };
    } catch (error) {
      throw this.failed('embeddings', model, startedAt, error);
    }
  }

  /** Counts a failed call and returns it as an LlmError. */
  private failed(operation: string, model: string, startedAt: number, error: unknown): LlmError {
    const failure = toLlmError(error);
    this.metrics.recordUpstreamCall(operation, model, startedAt, failure.code);
    return failure;
  }

  /**
   * A chat for an organization: its model (or `options.model`), and its fallback model once when the
   * primary fails with a non-retryable error. Unknown organization: 404 before anything goes upstream.
   */
  async chatCompletionForOrg(
    organizationId: string,
    messages: ChatMessage[],
    options: ChatOptions = {},
  ): Promise<OrgChatCompletionResult> {
    const served = await this.withOrganizationFallback(organizationId, options.model, (model) =>
      this.chatCompletion(messages, { ...options, model }),
    );
    return {
      ...served.value,
      model: served.model,
      fallbackUsed: served.fallbackReason !== undefined,
      ...(served.fallbackReason && { fallbackReason: served.fallbackReason }),
    };
  }

  /** The streamed variant: the fallback can only happen before the first event, hence before any byte. */
  async streamChatCompletionForOrg(
    organizationId: string,
    messages: ChatMessage[],
    options: ChatOptions = {},
  ): Promise<OrgChatStream> {
    const served = await this.withOrganizationFallback(organizationId, options.model, (model) =>
      startStream(this.streamChatCompletion(messages, { ...options, model })),
    );
    const fallbackUsed = served.fallbackReason !== undefined;
    const events = (async function* () {
      for await (const event of served.value) {
        yield event.type === 'done' ? { ...event, model: served.model, fallbackUsed } : event;
      }
    })();
    return { model: served.model, fallbackReason: served.fallbackReason, events };
  }

  private async withOrganizationFallback<T>(
    organizationId: string,
    requestedModel: string | undefined,
    attempt: (model: string) => Promise<T>,
  ): Promise<{ value: T; model: string; fallbackReason?: LlmErrorCode }> {
    const preferences = await this.organizations.getPreferences(organizationId);
    const primary = requestedModel ?? preferences.llmModel;
    try {
      return { value: await attempt(primary), model: primary };
    } catch (error) {
      const failure = toLlmError(error);
      const fallback = preferences.llmFallbackModel;
      // Retryable failures (429, 5xx, timeouts) go back to the caller: another model would not help.
      if (failure.retryable || failure.code === LlmErrorCode.REQUEST_ABORTED || !fallback || fallback === primary) {
        throw failure;
      }
      this.logger.warn(
        `Organization ${organizationId}: ${primary} failed with ${failure.code}, trying fallback model ${fallback}`,
      );
      this.metrics.fallbacks.inc({ reason: failure.code });
      try {
        return { value: await attempt(fallback), model: fallback, fallbackReason: failure.code };
      } catch (fallbackError) {
        const second = toLlmError(fallbackError);
        throw new LlmError(
          second.code,
          `Primary model ${primary} failed (${failure.code}: ${failure.message}); ` +
            `fallback model ${fallback} failed too (${second.code}: ${second.message})`,
          second.upstreamStatus,
          second.retryAfter,
        );
      }
    }
  }
}
