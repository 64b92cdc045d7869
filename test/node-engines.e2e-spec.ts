import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { minVersion, satisfies } from 'semver';
import { PROJECT_ROOT } from './support/litellm';

/**
 * The README promises Node.js 20.19+ (package.json `engines`). Every installed package must agree, or
 * `npm ci` warns EBADENGINE and the package may use what Node 20 lacks. Where a dependency's newest major
 * dropped Node 20, package.json `overrides` pins the last major that supports it (README, "Node.js 20").
 */
interface LockedPackage {
  dev?: boolean;
  devOptional?: boolean;
}
interface InstalledPackage {
  path: string;
  name: string;
  version: string;
  range: string;
}

const manifest = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8'));
const lockfile = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockedPackage> };
/** The oldest Node.js the project promises, and the one running the tests. */
const NODE_VERSIONS = [minVersion(manifest.engines.node)!.version, process.versions.node];

const excludedBy = (range: string) => NODE_VERSIONS.filter((version) => !satisfies(version, range, { includePrerelease: true }));

/** Installed packages that declare engines.node, production or development ones (as the lockfile marks them). */
function installedWithEngines(production: boolean): InstalledPackage[] {
  return Object.entries(lockfile.packages)
    .filter(([path, locked]) => path.startsWith('node_modules/') && production === !(locked.dev || locked.devOptional))
    .flatMap(([path]) => {
      const file = join(PROJECT_ROOT, path, 'package.json');
      if (!existsSync(file)) return []; // an optional package for another platform
      const installed = JSON.parse(readFileSync(file, 'utf8'));
      const range: unknown = installed.engines?.node;
      return typeof range === 'string' ? [{ path, name: installed.name, version: installed.version, range }] : [];
    });
}

describe('Node.js versions', () => {
  it('promises Node.js 20.19 or newer, and runs on a version it promises', () => {
    expect(manifest.engines.node).toBe('>=20.19.0');
    expect(excludedBy(manifest.engines.node)).toEqual([]);
  });

  it.each([
    ['production', true],
    ['development', false],
  ])('installs no %s dependency whose engines exclude the promised or the running Node.js', (_kind, production) => {
    const packages = installedWithEngines(production);
    expect(packages.length).toBeGreaterThan(20); // it did read the installed packages
    const excluding = packages
      .filter((installed) => excludedBy(installed.range).length > 0)
      .map((installed) => `${installed.name}@${installed.version} (${installed.path}) needs node ${installed.range}, not ${excludedBy(installed.range).join(', ')}`);
    expect(excluding).toEqual([]);
  });

  it('catches a range that drops Node.js 20, as the unpinned content-disposition 3, cookie 2 and file-type 22 do', () => {
    expect(excludedBy('>=22')).toContain('20.19.0');
    expect(excludedBy('^20.19.0 || ^22.12.0 || >=24.0.0')).toEqual([]);
  });
});
