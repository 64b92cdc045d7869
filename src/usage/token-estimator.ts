import type { ChatMessage, ToolDefinition } from '../litellm/litellm.types';

/**
 * Token counts for when the upstream reported none (a stream the caller left, or one the upstream cut) and,
 * for limits, before a call. gpt-tokenizer's o200k_base is the encoding of the gpt-4o family, the company's
 * default model; for other providers' models the count is an estimate, and is marked as one. The encoding
 * takes ~70 MB and ~0.25 s to load, so it is loaded at its first use, not at boot.
 */
type CountTokens = (text: string) => number;
let countTokens: CountTokens | undefined;

function encoder(): CountTokens {
  // require(), not import: loaded only when first needed. The CommonJS build, as Jest and Node 20 both take it.
  countTokens ??= (require('gpt-tokenizer/cjs/encoding/o200k_base') as { countTokens: CountTokens }).countTokens;
  return countTokens;
}

/** OpenAI's accounting for chat formats: a few tokens per message for its role and separators, and the reply's priming. */
const TOKENS_PER_MESSAGE = 3;
const TOKENS_PER_REPLY = 3;

/**
 * Beyond this many characters a text is counted from its first part and scaled by its length: BPE over a long
 * run without spaces costs time that grows faster than the text, and a count on the path of a call must not.
 */
export const EXACT_COUNT_MAX_CHARS = 32_768;

export function estimateTextTokens(text: string): number {
  if (text.length === 0) return 0;
  if (text.length <= EXACT_COUNT_MAX_CHARS) return encoder()(text);
  return Math.round((encoder()(text.slice(0, EXACT_COUNT_MAX_CHARS)) * text.length) / EXACT_COUNT_MAX_CHARS);
}

/** Counts a text that arrives in pieces (a stream) without keeping more of it than EXACT_COUNT_MAX_CHARS. */
export class StreamedTextCounter {
  private sample = '';
  private chars = 0;

  add(text: string): void {
    this.chars += text.length;
    if (this.sample.length < EXACT_COUNT_MAX_CHARS) this.sample += text.slice(0, EXACT_COUNT_MAX_CHARS - this.sample.length);
  }

  get empty(): boolean {
    return this.chars === 0;
  }

  tokens(): number {
    if (this.chars === 0) return 0;
    const sampled = estimateTextTokens(this.sample);
    return this.chars === this.sample.length ? sampled : Math.round((sampled * this.chars) / this.sample.length);
  }
}

/** What an image costs at low detail on OpenAI's models: a floor for any image, whatever its size. */
const TOKENS_PER_IMAGE = 85;

export function estimatePromptTokens(messages: readonly ChatMessage[], tools?: readonly ToolDefinition[]): number {
  let tokens = TOKENS_PER_REPLY;
  for (const message of messages) {
    tokens += TOKENS_PER_MESSAGE;
    const content = message.content;
    if (typeof content === 'string') tokens += estimateTextTokens(content);
    else for (const part of content ?? []) tokens += part.type === 'text' ? estimateTextTokens(part.text) : TOKENS_PER_IMAGE;
    for (const call of message.toolCalls ?? []) tokens += estimateTextTokens(call.function.name) + estimateTextTokens(call.function.arguments);
  }
  // Tool definitions reach the model as text too.
  if (tools && tools.length > 0) tokens += estimateTextTokens(JSON.stringify(tools));
  return tokens;
}

export function estimateInputTokens(inputs: readonly string[]): number {
  return inputs.reduce((sum, text) => sum + estimateTextTokens(text), 0);
}
