import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES } from '../src/common/errors/gateway-error';
import { PROJECT_ROOT } from './support/litellm';

/** The error table a caller reads, rendered from the one table the filter maps codes with. */
function errorTable(): string {
  const rows = Object.entries(ERROR_CODES).map(([code, { status, when }]) => `| \`${code}\` | ${status} | ${when} |`);
  return ['| `code` | Status | When |', '|---|---|---|', ...rows].join('\n');
}

describe('README', () => {
  const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');

  it('lists every error code with its status and when it happens, as ERROR_CODES says', () => {
    // On failure, paste the expected table into the README's Errors section.
    expect(readme).toContain(errorTable());
  });
});
