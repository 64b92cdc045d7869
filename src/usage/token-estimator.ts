import type { ChatMessage, ToolDefinition } from '../litellm/litellm.types';

/**
 * Token counts for when the upstream reported none (a stream the caller left, or one the upstream cut) and,
 * for limits, before a call. gpt-tokenizer's o200k_base is the encoding of the gpt-4o family, the company's
 * default model; for other providers' models the count is an estimate, and is marked as one. The encoding
 * takes ~60 MB and ~0.5 s to load, so it is loaded at its first use, not at boot.
 */
type CountTokens = (text: string) => number;
interface Encoding {
  count: CountTokens;
  /** The encoding's own pattern for its pre-tokens (the pieces BPE runs over). */
  preTokens: RegExp;
}
let encoding: Encoding | undefined;

/**
 * The encoding keeps the tokens of the pre-tokens it merged, 100,000 of them by default: at up to
 * LONG_PRE_TOKEN_CHARS each, callers sending text no one sent before could make that ~270 MB (10,000 pieces of
 * rare Chinese measured 27 MB). 10,000 keep what recurs (names, identifiers, words that are no single token).
 */
const MERGE_CACHE_ENTRIES = 10_000;
/**
 * A caller's text is text: "<|endoftext|>" in a prompt reaches the model as characters, not as the special token,
 * and is counted so (gpt-tokenizer's default would throw on it, failing the call's admission).
 */
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

function loadEncoding(): Encoding {
  if (encoding) return encoding;
  // require(), not import: loaded only when first needed. The CommonJS build, as Jest and Node 20 both take it.
  const o200k = require('gpt-tokenizer/cjs/encoding/o200k_base') as {
    countTokens(text: string, options: typeof PLAIN_TEXT): number;
    setMergeCacheSize(size: number): void;
  };
  o200k.setMergeCacheSize(MERGE_CACHE_ENTRIES);
  const { O200K_TOKEN_SPLIT_REGEX } = require('gpt-tokenizer/cjs/encodingParams/constants') as { O200K_TOKEN_SPLIT_REGEX: RegExp };
  encoding = { count: (text) => o200k.countTokens(text, PLAIN_TEXT), preTokens: new RegExp(O200K_TOKEN_SPLIT_REGEX.source, 'gu') };
  return encoding;
}

/** OpenAI's accounting for chat formats: a few tokens per message for its role and separators, and the reply's priming. */
const TOKENS_PER_MESSAGE = 3;
const TOKENS_PER_REPLY = 3;

/** Beyond this many characters a text is counted from its first part and scaled by its length. */
export const EXACT_COUNT_MAX_CHARS = 32_768;

/**
 * BPE's time grows with the square of a pre-token's length: 32 KB of spaces, of one letter or of Chinese without
 * punctuation took 1 to 14 s in one count, time a call's admission or a stream's end would block the gateway for.
 * So a text is first split as the encoding splits it: one with no pre-token longer than LONG_PRE_TOKEN_CHARS is
 * counted whole, exactly; in one that has some, each of those is counted in slices of that length (off by about a
 * token per slice), and the text between them as it is. A count's time is then bounded by the text's length.
 */
export const LONG_PRE_TOKEN_CHARS = 256;

export function estimateTextTokens(text: string): number {
  if (text.length === 0) return 0;
  if (text.length <= EXACT_COUNT_MAX_CHARS) return countBounded(text);
  return Math.round((countBounded(text.slice(0, EXACT_COUNT_MAX_CHARS)) * text.length) / EXACT_COUNT_MAX_CHARS);
}

function countBounded(text: string): number {
  const { count, preTokens } = loadEncoding();
  let tokens = 0;
  let counted = 0;
  preTokens.lastIndex = 0;
  for (let match = preTokens.exec(text); match !== null; match = preTokens.exec(text)) {
    const preToken = match[0];
    if (preToken.length <= LONG_PRE_TOKEN_CHARS) continue;
    tokens += count(text.slice(counted, match.index));
    for (let start = 0; start < preToken.length; ) {
      const end = sliceEnd(preToken, start);
      tokens += count(preToken.slice(start, end));
      start = end;
    }
    counted = match.index + preToken.length;
  }
  return counted === 0 ? count(text) : tokens + count(text.slice(counted));
}

/** LONG_PRE_TOKEN_CHARS on, but not between the two halves of a surrogate pair. */
function sliceEnd(preToken: string, start: number): number {
  const end = Math.min(start + LONG_PRE_TOKEN_CHARS, preToken.length);
  const code = preToken.charCodeAt(end);
  return end < preToken.length && code >= 0xdc00 && code <= 0xdfff ? end - 1 : end;
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

/**
 * At most this many characters of one call's texts are counted; the texts after them are scaled from those
 * counted. Counting costs up to ~6 µs a character (rare characters, merged byte by byte): a 1 MB body would
 * otherwise hold the event loop for seconds.
 */
export const CALL_EXACT_MAX_CHARS = 65_536;

function estimateTexts(texts: readonly string[], count: (text: string) => number): number {
  let tokens = 0;
  let countedChars = 0;
  let scaledChars = 0;
  for (const text of texts) {
    if (countedChars > 0 && countedChars + Math.min(text.length, EXACT_COUNT_MAX_CHARS) > CALL_EXACT_MAX_CHARS) scaledChars += text.length;
    else {
      tokens += count(text);
      countedChars += text.length;
    }
  }
  return scaledChars === 0 ? tokens : tokens + Math.round((tokens * scaledChars) / countedChars);
}

export function estimatePromptTokens(messages: readonly ChatMessage[], tools?: readonly ToolDefinition[]): number {
  let tokens = TOKENS_PER_REPLY;
  const texts: string[] = [];
  for (const message of messages) {
    tokens += TOKENS_PER_MESSAGE;
    const content = message.content;
    if (typeof content === 'string') texts.push(content);
    else {
      for (const part of content ?? []) {
        if (part.type === 'text') texts.push(part.text);
        else tokens += TOKENS_PER_IMAGE;
      }
    }
    for (const call of message.toolCalls ?? []) texts.push(call.function.name, call.function.arguments);
  }
  // Tool definitions reach the model as text too.
  if (tools && tools.length > 0) texts.push(JSON.stringify(tools));
  return tokens + estimateTexts(texts, estimatePromptTextTokens);
}

export function estimateInputTokens(inputs: readonly string[]): number {
  return estimateTexts(inputs, estimateTextTokens);
}
