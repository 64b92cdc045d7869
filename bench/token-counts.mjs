// What one token count costs (the usage ledger's and the limits' estimator, from the production build, in this
// process). BPE's time grows with the square of a pre-token's length: before the estimator bounded it, a count
// of 32 KB of Chinese without punctuation took 14 s, of one letter 1 s. The target is the growth: each text
// counted at 2 KB and at 32 KB, sixteen times longer, should take about sixteen times as long, not 256 (a
// slice of pieces longer than 2 KB would show).
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

const LONG = 32_768;
const SHORT = LONG / 16;
const fill = (unit) => unit.repeat(Math.ceil(LONG / unit.length)).slice(0, LONG);

/** Texts of LONG characters, ordinary ones and those BPE is slowest on; "prose" is the reference. */
const TEXTS = {
  prose: fill('The quick brown fox jumps over the lazy dog, then files a ticket about it. '),
  'JSON, compact': fill(JSON.stringify({ id: 12, name: 'item twelve', tags: ['a', 'b'], active: true })),
  base64: randomBytes(LONG).toString('base64').slice(0, LONG),
  'spaces only': fill(' '),
  'tabs and spaces': fill('\t '),
  'one letter': fill('x'),
  // One long run of punctuation that does not repeat: no piece of it is in the encoding's cache of merged pieces.
  'punctuation, random': Array.from(randomBytes(LONG), (byte) => '!#$%&*+-/<=>?@^_|~'[byte % 18]).join(''),
  'Chinese, no punctuation': fill('中文字'),
  // Characters the encoding has no token for: each is merged from its bytes.
  'Chinese, rare characters': Array.from({ length: LONG }, (_, at) => String.fromCharCode(0x4e00 + ((at * 104_729) % 20_000))).join(''),
};

/** Milliseconds per count of each text at SHORT and LONG characters (the best of a few, each without the encoding's cache of merged pieces). */
export function measureTokenCounts(root) {
  const require = createRequire(join(root, 'package.json'));
  const { estimateTextTokens } = require(join(root, 'dist', 'src', 'usage', 'token-estimator.js'));
  const { clearMergeCache } = require('gpt-tokenizer/cjs/encoding/o200k_base');
  const best = (text) => {
    estimateTextTokens(text); // loads the encoding, warms the code
    let fastest = Infinity;
    for (let round = 0; round < 5; round += 1) {
      clearMergeCache();
      const started = performance.now();
      estimateTextTokens(text);
      fastest = Math.min(fastest, performance.now() - started);
    }
    return fastest;
  };
  return Object.fromEntries(Object.entries(TEXTS).map(([name, text]) => [name, { short: best(text.slice(0, SHORT)), long: best(text) }]));
}

/** The target row (growth from SHORT to LONG, the worst text's), and a row for scale (the slowest count). */
export function tokenCountChecks(results) {
  const entries = Object.entries(results);
  const [steepName, steep] = entries.reduce((worst, entry) => (entry[1].long / entry[1].short > worst[1].long / worst[1].short ? entry : worst));
  const growth = steep.long / steep.short;
  const [slowName, slow] = entries.reduce((worst, entry) => (entry[1].long > worst[1].long ? entry : worst));
  return [
    [
      'token counts (ledger and limits estimator): 16× the text takes ≤ 24× the time, for every kind of text (256× if it grew with the square)',
      `${growth.toFixed(1)}× (${steepName}: ${steep.short.toFixed(2)} → ${steep.long.toFixed(2)} ms)`,
      growth <= 24,
    ],
    [
      '(for scale) token counts: the slowest 32 KB text, and ordinary prose',
      `${slow.long.toFixed(1)} ms (${slowName}); prose ${results.prose.long.toFixed(1)} ms`,
      true,
    ],
  ];
}
