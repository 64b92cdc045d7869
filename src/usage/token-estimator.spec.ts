import fc from 'fast-check';
import {
  cachedPromptTexts,
  COUNT_PIECE_CHARS,
  estimatePromptTextTokens,
  estimatePromptTokens,
  estimateTextTokens,
  PROMPT_CACHE_ENTRIES,
  PROMPT_CACHE_MAX_CHARS,
  preTokenEndsBefore,
} from './token-estimator';

type CountTokens = (text: string) => number;
// The real encoding, watched: how long a text each of its counts is given.
const counted: number[] = [];
jest.mock('gpt-tokenizer/cjs/encoding/o200k_base', () => {
  const real = jest.requireActual<{ countTokens: CountTokens }>('gpt-tokenizer/cjs/encoding/o200k_base');
  return {
    countTokens: (text: string) => {
      counted.push(text.length);
      return real.countTokens(text);
    },
  };
});
const { countTokens } = jest.requireActual<{ countTokens: CountTokens }>('gpt-tokenizer/cjs/encoding/o200k_base');

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

  it('counts ordinary texts exactly, though in pieces', () => {
    const texts = [
      'The quick brown fox jumps over the lazy dog. '.repeat(300),
      JSON.stringify(Array.from({ length: 200 }, (_, index) => ({ id: index, name: `item ${index}`, tags: ['a', 'b'] })), null, 2),
      'function add(a, b) {\n  return a + b;\n}\n\n'.repeat(200),
      '这是一个测试句子，用于计算令牌。它有标点符号！'.repeat(300),
      'Übergrößenträger sind schön; naïve café déjà vu. 🙂 '.repeat(200),
      'line one\n\n   indented   words   with   gaps\r\n'.repeat(200),
    ];
    for (const text of texts) {
      expect(text.length).toBeGreaterThan(COUNT_PIECE_CHARS * 10);
      counted.length = 0;
      expect(estimateTextTokens(text)).toBe(countTokens(text));
      expect(counted.length).toBeGreaterThan(1);
    }
  });

  describe('cutting a text where a pre-token ends', () => {
    // Pieces tricky at a cut: combining marks (which may join a run of punctuation), contractions, astral letters
    // and emoji (surrogate pairs), digit runs (grouped by three), CR LF, no-break and ideographic spaces.
    const pieces = ['a', 'Z', 'ß', 'İ', 'ǅ', 'ʰ', 'é', 'e\u0301', '\u0300', '中文', '𠀀', '🙂', '\u200d', '\ufe0f', ' ', '  ', '\t',
      '\n', '\r\n', '\u00a0', '\u3000', '.', ',', '!', '?', "'", "'s", "'LL", '\u2019', '1', '23', '456', '٣', 'Ⅻ', '-', '/', '(', '{',
      '"', '，', '。', '_', '$', 'word', 'wor'];

    it('changes no count, wherever it cuts', () => {
      fc.assert(
        fc.property(fc.array(fc.constantFrom(...pieces), { minLength: 2, maxLength: 12 }), (parts) => {
          const text = parts.join('');
          const whole = countTokens(text);
          for (let index = 1; index < text.length; index += 1) {
            if (preTokenEndsBefore(text, index)) expect(countTokens(text.slice(0, index)) + countTokens(text.slice(index))).toBe(whole);
          }
        }),
        { numRuns: 20_000 },
      );
    });

    it('counts long texts of all of these exactly', () => {
      // A separator at least every 150 characters: every stretch has a place to cut, so no cut falls inside a pre-token.
      const separator = fc.constantFrom('x.', 'a ', 'b,', '中。');
      const chunk = fc.tuple(fc.array(fc.constantFrom(...pieces), { maxLength: 60 }), separator).map(([parts, end]) => parts.join('') + end);
      fc.assert(
        fc.property(fc.array(chunk, { minLength: 5, maxLength: 40 }), (chunks) => {
          const text = chunks.join('');
          expect(estimateTextTokens(text)).toBe(countTokens(text));
        }),
        { numRuns: 200 },
      );
    });
  });

  it('never gives the encoding a piece longer than COUNT_PIECE_CHARS, and stays within a token per cut of the exact count', () => {
    // Runs BPE would take 1 to 14 s over, in one piece (quadratic in a pre-token's length).
    const runs = [' '.repeat(32_768), '\t '.repeat(16_384), 'x'.repeat(32_768), '-'.repeat(32_768), '中文字'.repeat(10_922), '🙂'.repeat(16_384)];
    for (const text of runs) {
      counted.length = 0;
      const tokens = estimateTextTokens(text);
      expect(Math.max(...counted)).toBeLessThanOrEqual(COUNT_PIECE_CHARS);
      const cuts = counted.length - 1;
      // The exact count, over a short stretch of the same run (the whole one is what takes seconds).
      const exactPerChar = countTokens(text.slice(0, 4_096)) / 4_096;
      expect(Math.abs(tokens - exactPerChar * text.length)).toBeLessThanOrEqual(cuts + 2);
    }
  });
});
