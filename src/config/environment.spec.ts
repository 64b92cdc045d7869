import { configurationWarnings, DEVELOPMENT_LITELLM_API_KEY, validateDatabaseEnvironment, validateEnvironment } from './environment';

const PRODUCTION_DATABASE = { DATABASE_URL: 'postgres://gateway:secret@db.internal:5432/gateway' };

describe('validateEnvironment', () => {
  it('applies the documented defaults', () => {
    const env = validateEnvironment({});

    expect(env).toMatchObject({
      NODE_ENV: 'development',
      PORT: 3000,
      LITELLM_URL: 'http://localhost:4000',
      LITELLM_API_KEY: DEVELOPMENT_LITELLM_API_KEY,
      LLM_MAX_RETRIES: 0,
      DEFAULT_CHAT_MODEL: 'gpt-4o',
      DEFAULT_EMBEDDING_MODEL: 'text-embedding-3-small',
      BODY_LIMIT_BYTES: 1_048_576,
    });
  });

  it.each(['LLM_TIMEOUT_MS', 'LLM_STREAM_IDLE_TIMEOUT_MS', 'STREAM_WRITE_TIMEOUT_MS'])('caps %s at 10 minutes', (name) => {
    expect(() => validateEnvironment({ [name]: '600001' })).toThrow(new RegExp(`${name}="600001": ${name} must not be greater than 600000`));
    expect(validateEnvironment({ [name]: '600000' })).toMatchObject({ [name]: 600_000 });
  });

  it('refuses a default model name that could not go into a header', () => {
    expect(() => validateEnvironment({ DEFAULT_CHAT_MODEL: 'gpt 4o\r\n' })).toThrow(/DEFAULT_CHAT_MODEL.*must be a model name/);
  });

  it('converts numbers from their string form', () => {
    expect(validateEnvironment({ PORT: '8080', LLM_TIMEOUT_MS: '5000' })).toMatchObject({ PORT: 8080, LLM_TIMEOUT_MS: 5000 });
  });

  it('reads booleans from true/false/1/0 and rejects anything else', () => {
    expect(validateEnvironment({ MIGRATIONS_RUN: 'false', METRICS_ENABLED: '0', SWAGGER_ENABLED: 'true' })).toMatchObject({
      MIGRATIONS_RUN: false,
      METRICS_ENABLED: false,
      SWAGGER_ENABLED: true,
    });
    expect(() => validateEnvironment({ MIGRATIONS_RUN: 'yes' })).toThrow(/MIGRATIONS_RUN="yes": MIGRATIONS_RUN must be a boolean value/);
  });

  it('names every bad variable in one error', () => {
    expect(() =>
      validateEnvironment({ PORT: '70000', LITELLM_URL: 'not a url', LLM_MAX_RETRIES: '-1', NODE_ENV: 'staging' }),
    ).toThrow(
      expect.objectContaining({
        message: expect.stringMatching(/PORT=.*\n.*LITELLM_URL=.*\n.*LLM_MAX_RETRIES=.*\n.*NODE_ENV=|NODE_ENV[\s\S]*PORT[\s\S]*LITELLM_URL[\s\S]*LLM_MAX_RETRIES/),
      }),
    );
  });

  it('requires LITELLM_API_KEY in production', () => {
    expect(() => validateEnvironment({ NODE_ENV: 'production', ...PRODUCTION_DATABASE })).toThrow(/LITELLM_API_KEY: required when NODE_ENV=production/);
    expect(validateEnvironment({ NODE_ENV: 'production', LITELLM_API_KEY: 'sk-prod', GATEWAY_API_KEYS: 'k'.repeat(16), ...PRODUCTION_DATABASE }).LITELLM_API_KEY).toBe(
      'sk-prod',
    );
  });

  it('refuses to start in production without caller keys', () => {
    expect(() => validateEnvironment({ NODE_ENV: 'production', LITELLM_API_KEY: 'sk-prod', ...PRODUCTION_DATABASE })).toThrow(
      /at least one caller key is required when NODE_ENV=production/,
    );
    expect(validateEnvironment({ NODE_ENV: 'production', LITELLM_API_KEY: 'sk-prod', GATEWAY_ADMIN_API_KEYS: 'a'.repeat(16), ...PRODUCTION_DATABASE }).NODE_ENV).toBe(
      'production',
    );
  });

  it('refuses the embedded database in production unless ALLOW_EMBEDDED_DATABASE=true', () => {
    const production = { NODE_ENV: 'production', LITELLM_API_KEY: 'sk-prod', GATEWAY_API_KEYS: 'k'.repeat(16) };
    expect(() => validateEnvironment(production)).toThrow(
      /DATABASE_URL: required when NODE_ENV=production .*set ALLOW_EMBEDDED_DATABASE=true to run on the embedded database anyway/,
    );
    expect(() => validateEnvironment({ ...production, DATABASE_URL: '' })).toThrow(/DATABASE_URL: required/);
    expect(() => validateEnvironment({ ...production, ALLOW_EMBEDDED_DATABASE: 'false' })).toThrow(/DATABASE_URL: required/);
    expect(validateEnvironment({ ...production, ALLOW_EMBEDDED_DATABASE: 'true' })).toMatchObject({ DATABASE_URL: undefined, ALLOW_EMBEDDED_DATABASE: true });
    expect(validateEnvironment({ ...production, ...PRODUCTION_DATABASE }).DATABASE_URL).toBe(PRODUCTION_DATABASE.DATABASE_URL);
    // Outside production the embedded database is the default.
    expect(validateEnvironment({}).ALLOW_EMBEDDED_DATABASE).toBe(false);
    expect(validateEnvironment({}).DATABASE_URL).toBeUndefined();
  });

  it('checks the database settings alone for the migration CLI: no LiteLLM or caller key asked for, in production too', () => {
    expect(validateDatabaseEnvironment({ NODE_ENV: 'production', ...PRODUCTION_DATABASE, PORT: 'not a port', GATEWAY_API_KEYS: 'short' })).toEqual({
      NODE_ENV: 'production',
      ...PRODUCTION_DATABASE,
      DATA_DIR: './.data',
      MIGRATIONS_RUN: true,
      ALLOW_EMBEDDED_DATABASE: false,
    });
    expect(() => validateDatabaseEnvironment({ NODE_ENV: 'production' })).toThrow(/DATABASE_URL: required when NODE_ENV=production/);
    expect(() => validateDatabaseEnvironment({ DATABASE_URL: 'mysql://root:hunter2@db/x' })).toThrow(
      expect.objectContaining({ message: expect.stringMatching(/^Invalid environment configuration:\n  - DATABASE_URL=\(hidden\): DATABASE_URL must be a postgres/) }),
    );
    expect(() => validateDatabaseEnvironment({ DATABASE_URL: 'mysql://root:hunter2@db/x' })).toThrow(expect.objectContaining({ message: expect.not.stringContaining('hunter2') }));
  });

  it('refuses short caller keys and keys with spaces, without printing them', () => {
    expect(() => validateEnvironment({ GATEWAY_API_KEYS: 'short' })).toThrow(/every key needs 16\+ printable characters/);
    expect(() => validateEnvironment({ GATEWAY_API_KEYS: 'a'.repeat(16) + ', with space in it!!' })).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('with space') }),
    );
  });

  it('warns, outside production, when authentication is off or the LiteLLM key is the development one', () => {
    const raw = {};
    const warnings = configurationWarnings(raw, validateEnvironment(raw));
    expect(warnings).toEqual([
      expect.stringContaining('caller authentication is OFF'),
      expect.stringContaining('LITELLM_API_KEY is not set'),
    ]);
    const configured = { GATEWAY_API_KEYS: 'k'.repeat(20), LITELLM_API_KEY: 'sk-x' };
    expect(configurationWarnings(configured, validateEnvironment(configured))).toEqual([]);
  });

  it('never prints the value of a secret in its error', () => {
    expect(() => validateEnvironment({ LITELLM_API_KEY: 42 as unknown as string, PORT: 'x' })).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('42') }),
    );
  });

  it('hides REDIS_URL (it may carry a password) and shows a bad limit', () => {
    expect(() => validateEnvironment({ REDIS_URL: 'http://:hunter2@redis:6379', GATEWAY_KEY_REQUESTS_PER_MINUTE: '-1' })).toThrow(
      expect.objectContaining({
        message: expect.stringMatching(/REDIS_URL=\(hidden\): REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL[\s\S]*GATEWAY_KEY_REQUESTS_PER_MINUTE="-1"/),
      }),
    );
    expect(() => validateEnvironment({ REDIS_URL: 'http://:hunter2@redis:6379' })).toThrow(expect.objectContaining({ message: expect.not.stringContaining('hunter2') }));
  });

  it('defaults the rate limits to unlimited, in memory, failing open', () => {
    expect(validateEnvironment({})).toMatchObject({
      REDIS_URL: undefined,
      LIMITS_FAIL_MODE: 'open',
      GATEWAY_KEY_REQUESTS_PER_MINUTE: undefined,
      LIMITS_DEFAULT_MAX_TOKENS: 4_096,
      LIMITS_SLOT_LEASE_MS: 600_000,
      LIMITS_DEFAULT_REQUESTS_PER_MINUTE: undefined,
      LIMITS_DEFAULT_TOKEN_BUDGET: undefined,
      LIMITS_DEFAULT_BUDGET_PERIOD: 'month',
    });
    expect(validateEnvironment({ REDIS_URL: 'rediss://:secret@redis.internal:6380/2', LIMITS_FAIL_MODE: 'closed', LIMITS_DEFAULT_CONCURRENT_REQUESTS: '0' })).toMatchObject({
      REDIS_URL: 'rediss://:secret@redis.internal:6380/2',
      LIMITS_FAIL_MODE: 'closed',
      LIMITS_DEFAULT_CONCURRENT_REQUESTS: 0,
    });
    let message = '';
    try {
      validateEnvironment({ LIMITS_FAIL_MODE: 'maybe', LIMITS_DEFAULT_BUDGET_PERIOD: 'week', LIMITS_SLOT_LEASE_MS: '1000' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('LIMITS_FAIL_MODE="maybe"');
    expect(message).toContain('LIMITS_DEFAULT_BUDGET_PERIOD="week"');
    expect(message).toContain('LIMITS_SLOT_LEASE_MS="1000": LIMITS_SLOT_LEASE_MS must not be less than 10000');
  });
});
