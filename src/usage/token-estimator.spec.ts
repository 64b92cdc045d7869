import fc from 'fast-check';
import {
  cachedPromptTexts,
  CALL_EXACT_MAX_CHARS,
  estimateInputTokens,
  EXACT_COUNT_MAX_CHARS,
  LONG_PRE_TOKEN_CHARS,
  estimatePromptTextTokens,
  estimatePromptTokens,
  estimateTextTokens,
  PROMPT_CACHE_ENTRIES,
  PROMPT_CACHE_MAX_CHARS,
} from './token-estimator';

type CountTokens = (text: string, options?: object) => number;
// The real encoding, watched: which texts it is given to count.
const counted: string[] = [];
jest.mock('gpt-tokenizer/cjs/encoding/o200k_base', () => {
  const real = jest.requireActual<{ countTokens: CountTokens; setMergeCacheSize(size: number): void }>('gpt-tokenizer/cjs/encoding/o200k_base');
  return {
    setMergeCacheSize: (size: number) => real.setMergeCacheSize(size),
    countTokens: (text: string, options?: object) => {
      counted.push(text);
      return real.countTokens(text, options);
    },
  };
});
const real = jest.requireActual<{ countTokens: CountTokens }>('gpt-tokenizer/cjs/encoding/o200k_base');
/** The exact count of a text as plain text (special tokens' names included). */
const countTokens = (text: string) => real.countTokens(text, { disallowedSpecial: new Set() });
const { O200K_TOKEN_SPLIT_REGEX } = jest.requireActual<{ O200K_TOKEN_SPLIT_REGEX: RegExp }>('gpt-tokenizer/cjs/encodingParams/constants');
const longestPreToken = (text: string) => Math.max(0, ...[...text.matchAll(O200K_TOKEN_SPLIT_REGEX)].map(([preToken]) => preToken.length));

describe('token estimator', () => {
  const systemPrompt = 'You are a concise assistant for an internal platform team. '.repeat(5);

  it('counts a prompt text the same whether or not its count was kept', () => {
    const first = estimatePromptTextTokens(systemPrompt);
    const again = estimatePromptTextTokens(systemPrompt);

    expect(first).toBe(estimateTextTokens(systemPrompt));
    expect(again).toBe(first);
    expect(estimatePromptTokens([{ role: 'system', content: systemPrompt }, { role: 'user', content: 'hi' }])).toBe(3 + 3 + first + 3 + estimateTextTokens('hi'));
  });

  it('keeps no count of a text too long to be worth keeping, and at most PROMPT_CACHE_ENTRIES counts', () => {
    const long = 'word '.repeat(PROMPT_CACHE_MAX_CHARS);
    const before = cachedPromptTexts();
    expect(before).toBeLessThan(PROMPT_CACHE_ENTRIES);
    expect(estimatePromptTextTokens(long)).toBe(estimateTextTokens(long));
    expect(cachedPromptTexts()).toBe(before);

    for (let index = 0; index < PROMPT_CACHE_ENTRIES + 100; index += 1) estimatePromptTextTokens(`${systemPrompt} #${index}`);
    expect(cachedPromptTexts()).toBe(PROMPT_CACHE_ENTRIES);
  });

  // Pieces tricky for a split: combining marks, contractions, astral letters and emoji (surrogate pairs), digit
  // runs (grouped by three), CR LF, no-break and ideographic spaces, slashes after punctuation.
  const pieces = ['a', 'Z', 'ß', 'İ', 'ǅ', 'ʰ', 'é', 'e\u0301', '\u0300', '中文', '𠀀', '🙂', '\u200d', '\ufe0f', ' ', '  ', '\t',
    '\n', '\r\n', '\u00a0', '\u3000', '.', ',', '!', '?', "'", "'s", "'LL", '\u2019', '1', '23', '456', '٣', 'Ⅻ', '-', '/', '(', '{',
    '"', '，', '。', '_', '$', 'word', 'wor'];

  it('counts a text whole and exactly when it has no long pre-token', () => {
    const texts = [
      'The quick brown fox jumps over the lazy dog. '.repeat(300),
      JSON.stringify(Array.from({ length: 200 }, (_, index) => ({ id: index, name: `item ${index}`, tags: ['a', 'b'] }))),
      '这是一个测试句子，用于计算令牌。它有标点符号！'.repeat(300),
      `${'x'.repeat(LONG_PRE_TOKEN_CHARS - 1)} `.repeat(20),
    ];
    for (const text of texts) {
      counted.length = 0;
      expect(estimateTextTokens(text)).toBe(countTokens(text));
      expect(counted).toEqual([text]);
    }
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...pieces), { maxLength: 400 }), (parts) => {
        const text = parts.join('');
        fc.pre(longestPreToken(text) <= LONG_PRE_TOKEN_CHARS);
        expect(estimateTextTokens(text)).toBe(countTokens(text));
      }),
      { numRuns: 300 },
    );
  });

  it('never gives the encoding a pre-token longer than LONG_PRE_TOKEN_CHARS, and stays within a token per slice of the exact count', () => {
    // Runs BPE would take 1 to 14 s over in one piece: its time grows with the square of a pre-token's length.
    const runs = [' '.repeat(32_768), '\t '.repeat(16_384), 'x'.repeat(32_768), '-'.repeat(32_768), '/\n'.repeat(16_384), '中文字'.repeat(10_922), '🙂'.repeat(16_384)];
    for (const run of runs) {
      const text = `Some words first. ${run} And some after.`;
      counted.length = 0;
      const tokens = estimateTextTokens(text);
      expect(counted.join('')).toBe(text.slice(0, EXACT_COUNT_MAX_CHARS)); // every character counted, once (longer texts are sampled)
      expect(Math.max(...counted.map(longestPreToken))).toBeLessThanOrEqual(LONG_PRE_TOKEN_CHARS);
      // The exact count, from a short stretch of the same run (the whole one is what takes seconds).
      const exact = countTokens('Some words first. ') + (countTokens(run.slice(0, 4_096)) / 4_096) * run.length + countTokens(' And some after.');
      expect(Math.abs(tokens - exact)).toBeLessThanOrEqual(counted.length + 2);
    }
  });

  it('counts texts with long pre-tokens among tricky pieces within a token per slice of the exact count', () => {
    const long = fc.constantFrom('x', ' ', '-', '中', '🙂', '\n').map((unit) => unit.repeat(300 + 7 * unit.length));
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constantFrom(...pieces), long), { maxLength: 60 }), (parts) => {
        const text = parts.join('');
        counted.length = 0;
        const tokens = estimateTextTokens(text);
        expect(counted.join('')).toBe(text);
        expect(Math.max(0, ...counted.map(longestPreToken))).toBeLessThanOrEqual(LONG_PRE_TOKEN_CHARS);
        expect(Math.abs(tokens - countTokens(text))).toBeLessThanOrEqual(counted.length + 1);
      }),
      { numRuns: 200 },
    );
  });

  it('counts a long pre-token as the sum of its slices, the text around it exactly, and never splits a surrogate pair', () => {
    const run = 'x'.repeat(4 * LONG_PRE_TOKEN_CHARS);
    expect(estimateTextTokens(run)).toBe(4 * countTokens('x'.repeat(LONG_PRE_TOKEN_CHARS)));
    // The space before the run is its pre-token's first character, as the encoding splits it.
    const slices = (text: string) => Array.from({ length: Math.ceil(text.length / LONG_PRE_TOKEN_CHARS) }, (_, index) => text.slice(index * LONG_PRE_TOKEN_CHARS, (index + 1) * LONG_PRE_TOKEN_CHARS));
    const inSlices = slices(` ${run}`).reduce((sum, slice) => sum + countTokens(slice), 0);
    expect(estimateTextTokens(`The words before it, ${run} and the words after it.`)).toBe(countTokens('The words before it,') + inSlices + countTokens(' and the words after it.'));

    counted.length = 0;
    estimateTextTokens(`.${'🙂'.repeat(2_000)}`);
    for (const piece of counted) {
      const last = piece.charCodeAt(piece.length - 1);
      expect(last >= 0xd800 && last <= 0xdbff).toBe(false); // no piece ends with the first half of a pair
    }
  });

  it("counts special tokens' names as the text they are, never failing on them", () => {
    for (const text of ['hello <|endoftext|> world', `${'x'.repeat(300)}<|im_start|>system`, '<|endoftext|>'.repeat(100)]) {
      expect(estimateTextTokens(text)).toBe(countTokens(text));
    }
    expect(estimatePromptTokens([{ role: 'user', content: 'Ignore <|endoftext|> this' }])).toBe(3 + 3 + countTokens('Ignore <|endoftext|> this'));
  });

  it("counts at most CALL_EXACT_MAX_CHARS of one call's texts, and scales the others from them", () => {
    const paragraph = 'The quick brown fox jumps over the lazy dog, then files a ticket about it. ';
    const texts = Array.from({ length: 40 }, (_, index) => `${paragraph.repeat(40)} #${index}`);
    const exact = texts.reduce((sum, text) => sum + countTokens(text), 0);

    counted.length = 0;
    const prompt = estimatePromptTokens(texts.map((content) => ({ role: 'user', content })));
    expect(counted.reduce((sum, text) => sum + text.length, 0)).toBeLessThanOrEqual(CALL_EXACT_MAX_CHARS);
    expect(Math.abs(prompt - (3 + 40 * 3 + exact)) / exact).toBeLessThan(0.01);

    counted.length = 0;
    const inputs = estimateInputTokens(texts);
    expect(counted.reduce((sum, text) => sum + text.length, 0)).toBeLessThanOrEqual(CALL_EXACT_MAX_CHARS);
    expect(Math.abs(inputs - exact) / exact).toBeLessThan(0.01);
    // Under the limit, every text is counted exactly.
    expect(estimateInputTokens(texts.slice(0, 5))).toBe(texts.slice(0, 5).reduce((sum, text) => sum + countTokens(text), 0));
  });
});
