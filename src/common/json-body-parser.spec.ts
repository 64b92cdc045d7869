import { jsonDepthExceeds } from './json-body-parser';

describe('jsonDepthExceeds', () => {
  it.each([
    [{ a: 1 }, 2, false],
    [{ a: { b: { c: 1 } } }, 3, false],
    [{ a: { b: { c: {} } } }, 3, true],
    [[[[1]]], 3, false],
    [[[[[]]]], 3, true],
    ['scalar', 0, false],
    [null, 0, false],
  ])('%j with a limit of %i → %s', (value, limit, exceeds) => {
    expect(jsonDepthExceeds(value, limit)).toBe(exceeds);
  });

  it('measures a hostile depth without overflowing the stack', () => {
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    expect(jsonDepthExceeds(deep, 32)).toBe(true);
  });
});
