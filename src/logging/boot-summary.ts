import { resolve } from 'node:path';
import { Environment } from '../config/environment';
import { urlWithoutCredentials } from './safe-url';

/** The settings the summary speaks of. */
export const BOOT_SETTINGS = [
  'NODE_ENV',
  'DATABASE_URL',
  'DATA_DIR',
  'LITELLM_URL',
  'HEALTH_READY_INCLUDE_LITELLM',
  'REDIS_URL',
  'LIMITS_FAIL_MODE',
  'USAGE_LEDGER_ENABLED',
  'METRICS_ENABLED',
] as const;
export type BootSettings = Pick<Environment, (typeof BOOT_SETTINGS)[number]>;

export interface BootFacts {
  /** Where the server listens. */
  url: string;
  environment: BootSettings;
  authEnabled: boolean;
  /** Swagger UI's path when it is served. */
  swaggerPath: string | undefined;
}

/** host:port/database of a PostgreSQL or Redis URL: where, without user or password. */
function whereIs(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`;
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * The one line an operator reads after a deploy: where the gateway listens and on what it runs. No secret: URLs
 * lose their user and password, keys are only on or off.
 */
export function bootSummary({ url, environment: env, authEnabled, swaggerPath }: BootFacts): { msg: string; [field: string]: unknown } {
  const database = env.DATABASE_URL
    ? { kind: 'server', at: whereIs(env.DATABASE_URL) }
    : { kind: 'embedded', at: resolve(env.DATA_DIR) };
  const litellm = urlWithoutCredentials(env.LITELLM_URL);
  const swagger = swaggerPath ? `${url}${swaggerPath}` : 'off';
  const limits = env.REDIS_URL
    ? { store: 'redis', at: whereIs(env.REDIS_URL), failMode: env.LIMITS_FAIL_MODE }
    : { store: 'memory' };
  const parts = [
    database.kind === 'server' ? `database: PostgreSQL server ${database.at}` : `database: embedded PostgreSQL (PGlite) in ${database.at}`,
    `LiteLLM: ${litellm}${env.HEALTH_READY_INCLUDE_LITELLM ? '' : ' (not part of readiness)'}`,
    `caller auth: ${authEnabled ? 'on' : 'OFF'}`,
    `Swagger: ${swagger}`,
    limits.store === 'redis' ? `limits: Redis ${limits.at}, fail ${env.LIMITS_FAIL_MODE}` : 'limits: in memory (this process only)',
    `usage ledger: ${env.USAGE_LEDGER_ENABLED ? 'on' : 'off'}`,
    `metrics: ${env.METRICS_ENABLED ? '/metrics' : 'off'}`,
  ];
  return {
    msg: `llm-gateway listening on ${url} (${env.NODE_ENV}); ${parts.join('; ')}`,
    url,
    nodeEnv: env.NODE_ENV,
    database,
    litellm,
    auth: authEnabled,
    swagger,
    limits,
    usageLedger: env.USAGE_LEDGER_ENABLED,
    metrics: env.METRICS_ENABLED,
  };
}
