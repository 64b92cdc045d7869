export const CHAT_ROLES = ['system', 'user', 'assistant'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface ChatOptions {
  /** LiteLLM model name; DEFAULT_CHAT_MODEL when absent. */
  model?: string;
  temperature?: number;
  maxTokens?: number;
  /** Aborts the upstream request, e.g. when the caller disconnects. */
  signal?: AbortSignal;
}

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export interface ChatCompletionResult {
  content: string;
  /** The model that served the call. */
  model: string;
  usage: TokenUsage;
}

export type ChatStreamEvent =
  | { type: 'delta'; content: string }
  | { type: 'done'; model: string; usage: TokenUsage; fallbackUsed?: boolean };

/** A chat served for an organization: `model` is the model that served it, primary or fallback. */
export interface OrgChatCompletionResult extends ChatCompletionResult {
  fallbackUsed: boolean;
  /** Why the primary model was given up (its error code), when the fallback served the call. */
  fallbackReason?: string;
}

/** A streamed chat for an organization, known to be flowing: its first event has arrived. */
export interface OrgChatStream {
  model: string;
  fallbackReason?: string;
  events: AsyncGenerator<ChatStreamEvent>;
}

export interface EmbeddingResult {
  embedding: number[];
  model: string;
  dimensions: number;
}

export interface EmbeddingBatchResult {
  embeddings: number[][];
  model: string;
  dimensions: number;
}
