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
  | { type: 'done'; model: string; usage: TokenUsage };

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
