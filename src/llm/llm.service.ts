import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type OpenAI from 'openai';
import { Environment } from '../config/environment';
import { LlmClientProvider } from './llm-client.provider';
import { toLlmError } from './llm.errors';
import {
  ChatCompletionResult,
  ChatMessage,
  ChatOptions,
  ChatStreamEvent,
  EmbeddingBatchResult,
  EmbeddingResult,
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

@Injectable()
export class LlmService {
  private readonly client: OpenAI;
  private readonly defaultChatModel: string;
  private readonly defaultEmbeddingModel: string;
  private readonly modelsCacheTtlMs: number;
  private modelsCache?: { models: Promise<string[]>; expiresAt: number };

  constructor(clientProvider: LlmClientProvider, config: ConfigService<Environment, true>) {
    this.client = clientProvider.client;
    this.defaultChatModel = config.get('DEFAULT_CHAT_MODEL', { infer: true });
    this.defaultEmbeddingModel = config.get('DEFAULT_EMBEDDING_MODEL', { infer: true });
    this.modelsCacheTtlMs = config.get('MODELS_CACHE_TTL_MS', { infer: true });
  }

  async chatCompletion(messages: ChatMessage[], options: ChatOptions = {}): Promise<ChatCompletionResult> {
    const model = options.model ?? this.defaultChatModel;
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
      return {
        content: completion.choices[0]?.message?.content ?? '',
        model: completion.model || model,
        usage: toTokenUsage(completion.usage),
      };
    } catch (error) {
      throw toLlmError(error);
    }
  }

  /**
   * Yields content deltas, then one `done` event with the model and the usage. Errors are LlmErrors, whether
   * LiteLLM refused the request or failed in the middle of the stream.
   */
  async *streamChatCompletion(messages: ChatMessage[], options: ChatOptions = {}): AsyncGenerator<ChatStreamEvent> {
    let model = options.model ?? this.defaultChatModel;
    let usage: UpstreamUsage;
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
        { signal: options.signal },
      );
      for await (const chunk of stream) {
        if (chunk.model) model = chunk.model;
        if (chunk.usage) usage = chunk.usage;
        // The usage chunk may come with an empty `choices` or with one: handle both.
        const content = chunk.choices?.[0]?.delta?.content;
        if (content) yield { type: 'delta', content };
      }
    } catch (error) {
      throw toLlmError(error);
    }
    yield { type: 'done', model, usage: toTokenUsage(usage) };
  }

  async generateEmbedding(text: string, model?: string): Promise<EmbeddingResult> {
    const result = await this.generateEmbeddings([text], model);
    return { embedding: result.embeddings[0], model: result.model, dimensions: result.dimensions };
  }

  async generateEmbeddings(texts: string[], model = this.defaultEmbeddingModel): Promise<EmbeddingBatchResult> {
    try {
      const response = await this.client.embeddings.create({
        model,
        input: texts.map(normalizeEmbeddingInput),
        // The SDK's default base64 path costs CPU and garbles LiteLLM's mock vectors.
        encoding_format: 'float',
      });
      const embeddings = [...response.data].sort((a, b) => a.index - b.index).map((item) => item.embedding);
      return { embeddings, model: response.model || model, dimensions: embeddings[0]?.length ?? 0 };
    } catch (error) {
      throw toLlmError(error);
    }
  }

  /** The model names LiteLLM serves, cached for MODELS_CACHE_TTL_MS; concurrent callers share one request. */
  async listModels(): Promise<string[]> {
    const now = Date.now();
    if (this.modelsCache && this.modelsCache.expiresAt > now) return this.modelsCache.models;

    const models = this.fetchModels();
    this.modelsCache = { models, expiresAt: now + this.modelsCacheTtlMs };
    models.catch(() => {
      // A failure is not cached: the next caller asks LiteLLM again.
      if (this.modelsCache?.models === models) this.modelsCache = undefined;
    });
    return models;
  }

  private async fetchModels(): Promise<string[]> {
    try {
      const ids: string[] = [];
      for await (const model of this.client.models.list()) ids.push(model.id);
      return ids.sort();
    } catch (error) {
      throw toLlmError(error);
    }
  }
}
