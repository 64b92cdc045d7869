import { validateEnvironment } from '../config/environment';
import { bootSummary } from './boot-summary';

describe('bootSummary', () => {
  it('says where the embedded database lives, and what is off in development', () => {
    const environment = validateEnvironment({ DATA_DIR: '/var/lib/gateway', USAGE_LEDGER_ENABLED: 'false', METRICS_ENABLED: 'false' });
    const summary = bootSummary({ url: 'http://127.0.0.1:3000', environment, authEnabled: false, swaggerPath: '/docs' });
    expect(summary.msg).toBe(
      'llm-gateway listening on http://127.0.0.1:3000 (development); database: embedded PostgreSQL (PGlite) in /var/lib/gateway; ' +
        'LiteLLM: http://localhost:4000; caller auth: OFF; Swagger: http://127.0.0.1:3000/docs; limits: in memory (this process only); ' +
        'usage ledger: off; metrics: off',
    );
    expect(summary).toMatchObject({ database: { kind: 'embedded', at: '/var/lib/gateway' }, auth: false, limits: { store: 'memory' } });
  });

  it('names servers by host, port and database, never with their credentials', () => {
    const environment = validateEnvironment({
      NODE_ENV: 'production',
      LITELLM_API_KEY: 'sk-canary-litellm',
      GATEWAY_API_KEYS: 'canary-caller-key-0123456789',
      DATABASE_URL: 'postgres://gateway:canary-db-password@db.internal:5432/gateway',
      REDIS_URL: 'rediss://:canary-redis-password@redis.internal:6380/2',
      LIMITS_FAIL_MODE: 'closed',
      LITELLM_URL: 'http://proxy-user:canary-proxy-password@litellm.internal:4000/',
      HEALTH_READY_INCLUDE_LITELLM: 'false',
    });
    const summary = bootSummary({ url: 'http://10.0.0.7:3000', environment, authEnabled: true, swaggerPath: undefined });
    expect(summary.msg).toBe(
      'llm-gateway listening on http://10.0.0.7:3000 (production); database: PostgreSQL server db.internal:5432/gateway; ' +
        'LiteLLM: http://litellm.internal:4000 (not part of readiness); caller auth: on; Swagger: off; limits: Redis redis.internal:6380/2, fail closed; ' +
        'usage ledger: on; metrics: /metrics',
    );
    expect(JSON.stringify(summary)).not.toMatch(/canary|gateway:/);
  });
});
