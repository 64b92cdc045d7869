/** The gateway's own words for calls to LiteLLM: what the pipeline asks for and what comes back, validated. */

export const CHAT_ROLES = ['system', 'user', 'assistant'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** A chat call as the pipeline hands it to LiteLLM: every field already validated. */
export interface ChatRequest {
  messages: ChatMessage[];
  /** A served model name; absent: the default (plain calls) or the organization's model. */
  model?: string;
  temperature?: number;
  maxTokens?: number;
}

export const FINISH_REASONS = ['stop', 'length', 'tool_calls', 'content_filter'] as const;
export type FinishReason = (typeof FINISH_REASONS)[number];

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

/** What one upstream attempt cost, as far as LiteLLM said. */
export interface AttemptMetering {
  /** The model string the provider reported (e.g. gpt-4o-2024-08-06), when it reported one. */
  upstreamModel?: string;
  /** Absent when the upstream did not report usage. */
  usage?: TokenUsage;
  /** Prompt tokens the provider served from its cache, when it said. */
  cachedPromptTokens?: number;
  /** In USD, when LiteLLM knows the price: its x-litellm-response-cost header, or a stream's usage chunk. */
  costUsd?: number;
  /** Milliseconds from sending the call to its first byte (headers). */
  timeToFirstByteMs?: number;
  /** Streams: the finish reason, once a chunk carried one. */
  finishReason?: FinishReason;
}

export interface ChatAnswer extends AttemptMetering {
  content: string;
  finishReason?: FinishReason;
}

/** One piece of a streamed answer, as it arrived. */
export interface ChatStreamPart {
  content?: string;
  finishReason?: FinishReason;
}

/**
 * A streamed answer whose headers have arrived and are an event stream. `reads()` yields the parts of each
 * upstream read together (so each read becomes one write to the caller), then ends once the stream is
 * complete; a failure, an idle upstream or a truncated stream is thrown as a GatewayError. `metering` fills
 * in as the stream goes (usage comes in the last chunk).
 */
export interface UpstreamChatStream {
  metering: AttemptMetering;
  reads(): AsyncGenerator<ChatStreamPart[], void, undefined>;
}

export interface EmbeddingsAnswer extends AttemptMetering {
  /** In input order, all of one length. */
  embeddings: number[][];
}
