import { bearerToken, CallerKeys, parseKeyList } from './caller-keys';

describe('CallerKeys', () => {
  const keys = CallerKeys.fromLists(['caller-key-aaaaaaaaaaaa', 'caller-key-bbbbbbbbbbbb'], ['admin-key-cccccccccccc']);

  it('identifies caller and admin keys, and nothing else', () => {
    expect(keys.identify('caller-key-aaaaaaaaaaaa')).toEqual({ scope: 'caller', keyId: expect.stringMatching(/^[0-9a-f]{8}$/) });
    expect(keys.identify('caller-key-bbbbbbbbbbbb')?.scope).toBe('caller');
    expect(keys.identify('admin-key-cccccccccccc')?.scope).toBe('admin');
    expect(keys.identify('caller-key-aaaaaaaaaaaX')).toBeUndefined();
    expect(keys.identify('')).toBeUndefined();
    expect(keys.identify(undefined)).toBeUndefined();
  });

  it('gives a key listed in both lists the admin scope', () => {
    const both = CallerKeys.fromLists(['shared-key-dddddddddddd'], ['shared-key-dddddddddddd']);
    expect(both.identify('shared-key-dddddddddddd')?.scope).toBe('admin');
  });

  it('holds digests only: no plain key can be found in it', () => {
    expect(JSON.stringify(keys)).not.toContain('caller-key');
    expect(JSON.stringify(Object.values(keys))).not.toContain('admin-key');
  });

  it('is off when no key is configured', () => {
    expect(CallerKeys.fromLists([], []).enabled).toBe(false);
    expect(keys.enabled).toBe(true);
  });
});

describe('parseKeyList', () => {
  it('splits on commas and trims', () => {
    expect(parseKeyList(' a-key , b-key,,')).toEqual(['a-key', 'b-key']);
    expect(parseKeyList(undefined)).toEqual([]);
  });
});

describe('bearerToken', () => {
  it.each([
    ['Bearer abc.DEF-123', 'abc.DEF-123'],
    ['Bearer ', undefined],
    ['bearer abc', undefined],
    ['Basic abc', undefined],
    ['Bearer a b', undefined],
    [`Bearer ${'x'.repeat(513)}`, undefined],
    [undefined, undefined],
  ])('%j → %j', (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });
});
