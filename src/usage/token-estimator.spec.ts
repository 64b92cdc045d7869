import {
  cachedPromptTexts,
  estimatePromptTextTokens,
  estimatePromptTokens,
  estimateTextTokens,
  PROMPT_CACHE_ENTRIES,
  PROMPT_CACHE_MAX_CHARS,
} from './token-estimator';

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
});
