import { createHash, timingSafeEqual } from 'node:crypto';

export type CallerScope = 'caller' | 'admin';

export interface CallerIdentity {
  scope: CallerScope;
  /** A short, non-secret id of the key (a prefix of its digest), for logs. */
  keyId: string;
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** Comma-separated keys, trimmed, empties dropped. */
export function parseKeyList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((key) => key.trim())
    .filter(Boolean);
}

/**
 * The caller keys the gateway accepts, held only as SHA-256 digests: the plain keys are dropped once these
 * are built at boot. Comparison is on digests, in constant time, over every stored key.
 */
export class CallerKeys {
  private constructor(private readonly entries: ReadonlyArray<{ digest: Buffer; scope: CallerScope }>) {}

  static fromLists(callerKeys: string[], adminKeys: string[]): CallerKeys {
    return new CallerKeys([
      ...callerKeys.map((key) => ({ digest: digest(key), scope: 'caller' as const })),
      ...adminKeys.map((key) => ({ digest: digest(key), scope: 'admin' as const })),
    ]);
  }

  /** No key configured: authentication is off (development only; production refuses to start). */
  get enabled(): boolean {
    return this.entries.length > 0;
  }

  identify(presented: string | undefined): CallerIdentity | undefined {
    if (presented === undefined) return undefined;
    const candidate = digest(presented);
    let found: CallerIdentity | undefined;
    // No early exit: the time taken does not tell which key, or how many, matched.
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.digest, candidate) && found?.scope !== 'admin') {
        found = { scope: entry.scope, keyId: entry.digest.toString('hex').slice(0, 8) };
      }
    }
    return found;
  }
}

/** The token of an `Authorization: Bearer <token>` header; undefined for anything else. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header);
  return match?.[1];
}
