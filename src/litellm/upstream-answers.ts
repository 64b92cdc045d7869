import { GatewayError } from '../common/errors/gateway-error';
import { ChatAnswer, ChatStreamPart, EmbeddingsAnswer, FINISH_REASONS, FinishReason, TokenUsage, ToolCall, ToolCallDelta } from './litellm.types';

/**
 * LiteLLM's answers are checked before anything is built from them: a 200 that is not an answer (no choices,
 * no vectors) is a 502, never an empty success. These read the JSON the SDK or the event stream produced.
 */

type Json = Record<string, unknown>;

export function invalidResponse(detail: string): GatewayError {
  return new GatewayError('UPSTREAM_INVALID_RESPONSE', `LiteLLM answered 200 with an invalid answer: ${detail}`);
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

/** Usage as reported, or undefined when absent; a malformed one is refused rather than recorded as zeros. */
export function readUsage(value: unknown): TokenUsage | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value) || !isCount(value.prompt_tokens) || !isCount(value.completion_tokens)) {
    throw invalidResponse('usage without token counts');
  }
  const totalTokens = isCount(value.total_tokens) ? value.total_tokens : value.prompt_tokens + value.completion_tokens;
  return { promptTokens: value.prompt_tokens, completionTokens: value.completion_tokens, totalTokens };
}

/**
 * What usage says beyond the counts: prompt tokens served from the provider's cache, and, in a stream's usage
 * chunk, LiteLLM's cost (streams get no x-litellm-response-cost header).
 */
export function readUsageDetails(value: unknown): { cachedPromptTokens?: number; costUsd?: number } {
  if (!isObject(value)) return {};
  const details = value.prompt_tokens_details;
  const cached = isObject(details) && isCount(details.cached_tokens) ? details.cached_tokens : undefined;
  const cost = typeof value.cost === 'number' && Number.isFinite(value.cost) && value.cost >= 0 ? value.cost : undefined;
  return { ...(cached !== undefined && { cachedPromptTokens: cached }), ...(cost !== undefined && { costUsd: cost }) };
}

/** OpenAI's finish reasons; the legacy `function_call` is a tool call; anything else is a plain stop. */
export function readFinishReason(value: unknown): FinishReason | undefined {
  if (typeof value !== 'string') return undefined;
  if ((FINISH_REASONS as readonly string[]).includes(value)) return value as FinishReason;
  return value === 'function_call' ? 'tool_calls' : 'stop';
}

function readModel(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** A plain answer's tool calls, built field by field (LiteLLM adds an `index` of its own there, which is dropped). */
function readToolCalls(value: unknown): ToolCall[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw invalidResponse('tool calls that are not a list');
  if (value.length === 0) return undefined;
  return value.map((call: unknown) => {
    if (!isObject(call) || typeof call.id !== 'string' || !isObject(call.function) || typeof call.function.name !== 'string') {
      throw invalidResponse('a tool call without an id or a function name');
    }
    const args = call.function.arguments;
    return { id: call.id, type: 'function', function: { name: call.function.name, arguments: typeof args === 'string' ? args : '' } };
  });
}

/** A plain chat completion: at least one choice with a message whose content is text, or null beside tool calls. */
export function readChatCompletion(completion: unknown): Omit<ChatAnswer, 'costUsd' | 'timeToFirstByteMs'> {
  if (!isObject(completion)) throw invalidResponse('not a JSON object');
  const choices = completion.choices;
  if (!Array.isArray(choices) || choices.length === 0) throw invalidResponse('no choices');
  const choice = choices[0] as unknown;
  if (!isObject(choice) || !isObject(choice.message)) throw invalidResponse('a choice without a message');
  const content = choice.message.content;
  if (content !== null && content !== undefined && typeof content !== 'string') throw invalidResponse('message content that is not text');
  const toolCalls = readToolCalls(choice.message.tool_calls);
  const finishReason = readFinishReason(choice.finish_reason);
  return {
    // No text at all is null when the model called tools or refused (content_filter); else an empty answer.
    content: content ?? (toolCalls || finishReason === 'content_filter' ? null : ''),
    ...(toolCalls && { toolCalls }),
    finishReason,
    upstreamModel: readModel(completion.model),
    usage: readUsage(completion.usage),
    cachedPromptTokens: readUsageDetails(completion.usage).cachedPromptTokens,
  };
}

/** A streamed tool call's piece; `index` says which call it belongs to. */
function readToolCallDeltas(value: unknown): ToolCallDelta[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw invalidResponse('stream tool calls that are not a list');
  const deltas: ToolCallDelta[] = [];
  for (const item of value as unknown[]) {
    if (!isObject(item) || !isCount(item.index)) throw invalidResponse('a streamed tool call without an index');
    const delta: ToolCallDelta = { index: item.index };
    if (typeof item.id === 'string') delta.id = item.id;
    if (item.type === 'function') delta.type = 'function';
    if (isObject(item.function)) {
      const { name, arguments: args } = item.function;
      delta.function = { ...(typeof name === 'string' && { name }), ...(typeof args === 'string' && { arguments: args }) };
    }
    deltas.push(delta);
  }
  return deltas.length > 0 ? deltas : undefined;
}

/** What a stream has said so far, beyond its parts. */
export interface StreamState {
  upstreamModel?: string;
  usage?: TokenUsage;
  cachedPromptTokens?: number;
  costUsd?: number;
  /** Set once a choice carried a finish_reason: the answer is complete, whatever comes after. */
  finishReason?: FinishReason;
}

/**
 * One chunk of a stream, its data already parsed: a part when it carries content or a finish reason; the
 * model and usage go to `state`. An `{"error": ...}` chunk is thrown by the caller, not read here.
 */
export function readChatChunk(chunk: unknown, state: StreamState): ChatStreamPart | undefined {
  if (!isObject(chunk)) throw invalidResponse('a stream chunk that is not a JSON object');
  const model = chunk.model;
  if (typeof model === 'string' && model.length > 0) state.upstreamModel = model;
  if (chunk.usage !== undefined && chunk.usage !== null) {
    state.usage = readUsage(chunk.usage);
    Object.assign(state, readUsageDetails(chunk.usage));
  }
  const choices = chunk.choices;
  if (choices === undefined || choices === null) return undefined;
  if (!Array.isArray(choices)) throw invalidResponse('stream chunk choices that are not a list');
  // The usage chunk may come with an empty `choices` or with one: both are handled.
  const choice = choices[0] as unknown;
  if (!isObject(choice)) return undefined;
  const delta = choice.delta;
  const content = isObject(delta) && typeof delta.content === 'string' && delta.content.length > 0 ? delta.content : undefined;
  const toolCalls = isObject(delta) ? readToolCallDeltas(delta.tool_calls) : undefined;
  const finishReason = readFinishReason(choice.finish_reason);
  if (finishReason) state.finishReason = finishReason;
  if (content === undefined && toolCalls === undefined && finishReason === undefined) return undefined;
  const part: ChatStreamPart = {};
  if (content !== undefined) part.content = content;
  if (toolCalls !== undefined) part.toolCalls = toolCalls;
  if (finishReason !== undefined) part.finishReason = finishReason;
  return part;
}

/**
 * An embeddings answer: exactly one non-empty vector of numbers per input, all of one length, put back in
 * input order by their `index`.
 */
export function readEmbeddings(answer: unknown, inputs: number, askedDimensions?: number): Omit<EmbeddingsAnswer, 'costUsd' | 'timeToFirstByteMs'> {
  if (!isObject(answer) || !Array.isArray(answer.data)) throw invalidResponse('no embeddings list');
  const data = answer.data as unknown[];
  if (data.length !== inputs) throw invalidResponse(`${data.length} vectors for ${inputs} inputs`);
  const embeddings: number[][] = new Array(inputs);
  let dimensions = -1;
  for (const [position, item] of data.entries()) {
    if (!isObject(item) || !Array.isArray(item.embedding)) throw invalidResponse('an item without a vector');
    const vector = item.embedding as unknown[];
    const index = item.index === undefined ? position : item.index;
    if (!isCount(index) || index >= inputs || embeddings[index] !== undefined) throw invalidResponse('vector indexes that do not match the inputs');
    if (vector.length === 0) throw invalidResponse('an empty vector');
    if (askedDimensions !== undefined && vector.length !== askedDimensions) {
      throw invalidResponse(`vectors of ${vector.length} dimensions where ${askedDimensions} were asked for (does the model take dimensions?)`);
    }
    if (dimensions === -1) dimensions = vector.length;
    if (vector.length !== dimensions) throw invalidResponse('vectors of different lengths');
    for (const value of vector) if (typeof value !== 'number' || !Number.isFinite(value)) throw invalidResponse('a vector with a value that is not a number');
    embeddings[index] = vector as number[];
  }
  return { embeddings, upstreamModel: readModel(answer.model), usage: readEmbeddingUsage(answer.usage) };
}

/** Embeddings report prompt tokens only. */
function readEmbeddingUsage(value: unknown): TokenUsage | undefined {
  if (!isObject(value) || !isCount(value.prompt_tokens)) return undefined;
  const totalTokens = isCount(value.total_tokens) ? value.total_tokens : value.prompt_tokens;
  return { promptTokens: value.prompt_tokens, completionTokens: 0, totalTokens };
}
