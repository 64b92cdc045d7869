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

/** Beyond this many characters a text is counted from its first part and scaled by its length. */
export const EXACT_COUNT_MAX_CHARS = 32_768;

/**
 * BPE's time grows with the square of a pre-token's length: 32 KB of spaces, of one letter or of Chinese without
 * punctuation took 1 to 14 s in one count, time a call's admission or a stream's end would block the gateway for.
 * So a text is counted in pieces of at most this many characters, cut where the encoding's pre-tokens always end:
 * before a space that follows a non-space character, and after a letter followed by anything but a letter, a mark
 * or an apostrophe (o200k's pattern: a run of letters takes at most one leading non-letter and a trailing 's, 't...;
 * a mark alone may belong to a run of punctuation, so only a letter counts).
 * There the count is exact. Only a stretch this long without such a place is cut inside (its count may be off by
 * a token per cut), which bounds a count's time by the text's length.
 */
export const COUNT_PIECE_CHARS = 256;
const WHITESPACE = /\s/;
const LETTER = /\p{L}/u;
const CONTINUES_LETTERS = /[\p{L}\p{M}']/u;

export function estimateTextTokens(text: string): number {
  if (text.length === 0) return 0;
  if (text.length <= EXACT_COUNT_MAX_CHARS) return countInPieces(text);
  return Math.round((countInPieces(text.slice(0, EXACT_COUNT_MAX_CHARS)) * text.length) / EXACT_COUNT_MAX_CHARS);
}

function countInPieces(text: string): number {
  const count = encoder();
  let tokens = 0;
  let start = 0;
  while (text.length - start > COUNT_PIECE_CHARS) {
    const end = pieceEnd(text, start);
    tokens += count(text.slice(start, end));
    start = end;
  }
  return tokens + count(text.slice(start));
}

/** Where the piece starting at `start` ends: at the last place in reach where a pre-token always ends, else at the limit. */
function pieceEnd(text: string, start: number): number {
  const limit = start + COUNT_PIECE_CHARS;
  for (let index = limit; index > start; index -= 1) if (preTokenEndsBefore(text, index)) return index;
  // No such place: cut at the limit, but not between the two halves of a surrogate pair.
  const code = text.charCodeAt(limit);
  return code >= 0xdc00 && code <= 0xdfff ? limit - 1 : limit;
}

/** Whether the encoding's pre-tokens always end between text[index - 1] and text[index] (exported for its test). */
export function preTokenEndsBefore(text: string, index: number): boolean {
  const next = text[index];
  const previous = text[index - 1];
  if (next === ' ') return !WHITESPACE.test(previous);
  // A surrogate tested alone is no letter: never cut next to one (it may be half of a letter).
  const code = next.charCodeAt(0);
  if (code >= 0xd800 && code <= 0xdfff) return false;
  return LETTER.test(previous) && !CONTINUES_LETTERS.test(next);
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

/**
 * Prompt texts recur: the same system prompt on every call of a service, an agent's conversation resent with
 * one more turn each time. Their counts are kept (texts of PROMPT_CACHE_MIN_CHARS to PROMPT_CACHE_MAX_CHARS,
 * the PROMPT_CACHE_ENTRIES most recent), so a call's estimate costs the new text only: counting 1 KB takes
 * about 0.5 ms, which the limits' admission would otherwise add to every call.
 */
export const PROMPT_CACHE_MIN_CHARS = 64;
export const PROMPT_CACHE_MAX_CHARS = 8_192;
export const PROMPT_CACHE_ENTRIES = 2_048;
const promptCounts = new Map<string, number>();

export function estimatePromptTextTokens(text: string): number {
  if (text.length < PROMPT_CACHE_MIN_CHARS || text.length > PROMPT_CACHE_MAX_CHARS) return estimateTextTokens(text);
  const known = promptCounts.get(text);
  if (known !== undefined) {
    promptCounts.delete(text); // re-inserted last: the least recently used entry is the first to go
    promptCounts.set(text, known);
    return known;
  }
  const tokens = estimateTextTokens(text);
  promptCounts.set(text, tokens);
  if (promptCounts.size > PROMPT_CACHE_ENTRIES) promptCounts.delete(promptCounts.keys().next().value as string);
  return tokens;
}

/** How many prompt texts' counts are kept (for tests). */
export function cachedPromptTexts(): number {
  return promptCounts.size;
}

/** What an image costs at low detail on OpenAI's models: a floor for any image, whatever its size. */
const TOKENS_PER_IMAGE = 85;

export function estimatePromptTokens(messages: readonly ChatMessage[], tools?: readonly ToolDefinition[]): number {
  let tokens = TOKENS_PER_REPLY;
  for (const message of messages) {
    tokens += TOKENS_PER_MESSAGE;
    const content = message.content;
    if (typeof content === 'string') tokens += estimatePromptTextTokens(content);
    else for (const part of content ?? []) tokens += part.type === 'text' ? estimatePromptTextTokens(part.text) : TOKENS_PER_IMAGE;
    for (const call of message.toolCalls ?? []) tokens += estimateTextTokens(call.function.name) + estimateTextTokens(call.function.arguments);
  }
  // Tool definitions reach the model as text too.
  if (tools && tools.length > 0) tokens += estimatePromptTextTokens(JSON.stringify(tools));
  return tokens;
}

export function estimateInputTokens(inputs: readonly string[]): number {
  return inputs.reduce((sum, text) => sum + estimateTextTokens(text), 0);
}
