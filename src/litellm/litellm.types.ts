/** The gateway's own words for calls to LiteLLM: what the pipeline asks for and what comes back, validated. */

export const CHAT_ROLES = ['system', 'user', 'assistant', 'tool'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export const IMAGE_DETAILS = ['auto', 'low', 'high'] as const;
export type ImageDetail = (typeof IMAGE_DETAILS)[number];

export type ContentPart = { type: 'text'; text: string } | { type: 'image_url'; imageUrl: { url: string; detail?: ImageDetail } };

/** A call of a function the model asked for; `arguments` is JSON text, as the model wrote it. */
export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ChatMessage {
  role: ChatRole;
  /** Text, or parts (text and images); null only for an assistant message that carries tool calls. */
  content: string | ContentPart[] | null;
  /** Assistant messages: the tools the model called. */
  toolCalls?: ToolCall[];
  /** Tool messages: the call this is the result of. */
  toolCallId?: string;
}

export interface ToolDefinition {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean };
}

export type ToolChoice = 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };

export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; jsonSchema: { name: string; description?: string; schema?: Record<string, unknown>; strict?: boolean } };

/** A chat call as the pipeline hands it to LiteLLM: every field already validated. */
export interface ChatRequest {
  messages: ChatMessage[];
  /** A served model name; absent: the default (plain calls) or the organization's model. */
  model?: string;
  temperature?: number;
  maxTokens?: number;
  tools?: ToolDefinition[];
  toolChoice?: ToolChoice;
  parallelToolCalls?: boolean;
  responseFormat?: ResponseFormat;
  stop?: string | string[];
  topP?: number;
  seed?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
}

/** One piece of a streamed tool call: the first of a call carries its id and name, the next ones more arguments. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function?: { name?: string; arguments?: string };
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
  /** null when the model only called tools, or refused. */
  content: string | null;
  toolCalls?: ToolCall[];
  finishReason?: FinishReason;
}

/** One piece of a streamed answer, as it arrived. */
export interface ChatStreamPart {
  content?: string;
  toolCalls?: ToolCallDelta[];
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

export interface EmbeddingsRequest {
  model: string;
  input: string[];
  /** Shorter vectors, for the models that can (text-embedding-3). */
  dimensions?: number;
}

export interface EmbeddingsAnswer extends AttemptMetering {
  /** In input order, all of one length. */
  embeddings: number[][];
}
