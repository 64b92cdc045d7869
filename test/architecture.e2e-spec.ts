import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { PROJECT_ROOT } from './support/litellm';

/**
 * Dependencies point one way (docs/architecture.md): a folder of src/ may import from its own folder and
 * from folders of a lower rank, never from a higher one, so no call goes back up. The composition roots
 * (bootstrap, the app module, the data-source definitions that list every entity) may import anything.
 */
const RANKS: Record<string, number> = {
  common: 0,
  config: 1,
  auth: 2,
  database: 2,
  lifecycle: 2,
  logging: 2,
  metrics: 3,
  litellm: 4,
  organizations: 5,
  usage: 5,
  limits: 4,
  routing: 6,
  api: 7,
  health: 7,
};
const COMPOSITION_ROOTS = new Set(['main.ts', 'app.factory.ts', 'app.module.ts', 'database/data-source.ts', 'database/cli-data-source.ts']);

function sourceFiles(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts') ? [path] : [];
  });
}

describe('architecture', () => {
  const src = join(PROJECT_ROOT, 'src');
  const files = sourceFiles(src);

  it('has a rank for every folder of src/', () => {
    const folders = new Set(files.map((file) => relative(src, file).split('/')).filter((parts) => parts.length > 1).map(([folder]) => folder));
    expect([...folders].filter((folder) => RANKS[folder] === undefined)).toEqual([]);
  });

  it('imports only downwards: no folder depends on one above it', () => {
    const violations: string[] = [];
    for (const file of files) {
      const path = relative(src, file);
      if (COMPOSITION_ROOTS.has(path)) continue;
      const from = path.split('/')[0];
      for (const [, target] of readFileSync(file, 'utf8').matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
        const imported = relative(src, resolve(dirname(file), target));
        if (imported.startsWith('..')) continue; // migrations/, outside src/
        const to = imported.split('/')[0];
        if (to !== from && !(RANKS[to] < RANKS[from])) violations.push(`${path} → ${imported}`);
      }
    }
    expect(violations).toEqual([]);
  });
});
