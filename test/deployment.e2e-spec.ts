import Ajv from 'ajv';
import draft07 from 'ajv/dist/refs/json-schema-draft-07.json';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { parse } from 'yaml';
import { Environment, validateEnvironment } from '../src/config/environment';
import { DEFAULT_LLM_FALLBACK_MODEL, DEFAULT_LLM_MODEL } from '../src/organizations/organization.entity';
import { readJson, startGateway } from './support/gateway';
import { PROJECT_ROOT, startLiteLLM } from './support/litellm';

/**
 * No Docker engine runs here, so the containers cannot be started. What can be checked is checked:
 * the files parse, agree with each other and with the app's configuration schema, and the real
 * LiteLLM (same version as the image) starts with the shipped config and reports healthy.
 */
const read = (file: string) => readFileSync(join(PROJECT_ROOT, file), 'utf8');
const compose = parse(read('docker-compose.yml'));
const litellmConfig = parse(read('litellm-config.yaml'));
const dockerfile = read('Dockerfile');
const pinnedLiteLLM = /litellm\[proxy\]==([\d.]+)/.exec(read('litellm-requirements.txt'))?.[1];
/** .env.example as Compose reads a .env copied from it; the two keys it requires filled in. */
const envExample = parseEnv(read('.env.example')) as Record<string, string>;
const hostEnv: Record<string, string> = {
  ...envExample,
  LITELLM_MASTER_KEY: 'sk-compose-test',
  GATEWAY_API_KEYS: 'compose-caller-key-0123456789',
};

/** Every ${VAR} (with or without a default or an error) in a text; $${VAR} is the container's, not Compose's. */
const interpolated = (text: string) => [...text.matchAll(/(?<!\$)\$\{(\w+)/g)].map((match) => match[1]);

/** Compose's own interpolation: ${VAR:-default}, ${VAR:?error}, $$. */
function interpolate(value: string, env: Record<string, string>): string {
  return value
    .replace(/\$\{(\w+)(?::([-?])([^}]*))?\}/g, (_, name: string, kind?: string, rest?: string) => {
      if (env[name]) return env[name];
      if (kind === '-') return rest ?? '';
      if (kind === '?') throw new Error(`${name} is required: ${rest}`);
      return '';
    })
    .replace(/\$\$/g, '$');
}

/** Interpolates every string of a parsed compose file, as Compose does before it validates. */
function interpolateAll(value: unknown, env: Record<string, string>): unknown {
  if (typeof value === 'string') return interpolate(value, env);
  if (Array.isArray(value)) return value.map((item) => interpolateAll(item, env));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolateAll(item, env)]));
  }
  return value;
}

/**
 * The Compose Specification's schema, as Docker Compose applies it (test/support/compose-spec.md says where
 * the copy comes from). It names its meta-schema https://json-schema.org/draft-07/schema, ajv's draft-07
 * under another address.
 */
function composeSchemaValidator() {
  const ajv = new Ajv({ allErrors: true, allowUnionTypes: true, strictTypes: false });
  ajv.addMetaSchema(draft07, 'https://json-schema.org/draft-07/schema');
  return ajv.compile(JSON.parse(read('test/support/compose-spec.json')));
}

describe('deployment files', () => {
  const { postgres, litellm, gateway } = compose.services;

  it('pins LiteLLM to the version the tests run', () => {
    expect(pinnedLiteLLM).toMatch(/^\d+\.\d+\.\d+$/);
    expect(litellm.image).toBe(`ghcr.io/berriai/litellm:v${pinnedLiteLLM}`);
  });

  it('runs LiteLLM with the shipped config, its keys from the host, and a liveness healthcheck the image can run', () => {
    expect(litellm.command).toEqual(['--config', '/app/config.yaml', '--port', '4000', '--num_workers', '${LITELLM_NUM_WORKERS:-2}', '--keepalive_timeout', '10']);
    expect(litellm.volumes).toContain('./litellm-config.yaml:/app/config.yaml:ro');
    // Exactly what LiteLLM reads: no env_file (the callers' keys stay out), no salt key (no database here).
    expect(Object.keys(litellm.environment).sort()).toEqual(['ANTHROPIC_API_KEY', 'LITELLM_LOCAL_MODEL_COST_MAP', 'LITELLM_LOG', 'LITELLM_MASTER_KEY', 'OPENAI_API_KEY']);
    expect(litellm.environment.LITELLM_LOG).toBe('ERROR');
    expect(litellm.env_file).toBeUndefined();
    const healthcheck = litellm.healthcheck.test.join(' ');
    expect(healthcheck).toContain('wget'); // the image has no curl
    expect(healthcheck).toContain('/health/liveliness');
    expect(healthcheck).not.toMatch(/\/health(\s|$|")/); // GET /health calls every model
    expect(litellm.ports[0]).toMatch(/^\$\{LITELLM_HOST_PORT:-4010\}:4000$/);
  });

  it('runs LiteLLM as tuned (README, "Capacity planning"): the same flags in compose, npm run litellm and the bench, a keep-alive longer than the gateway\'s', () => {
    const flag = (args: string[], name: string) => args[args.indexOf(name) + 1];
    // Idle connections: the gateway closes first, or some calls land on a socket LiteLLM is closing.
    const gatewayKeepAliveMs = validateEnvironment({}).LITELLM_KEEP_ALIVE_TIMEOUT_MS;
    expect(Number(flag(litellm.command, '--keepalive_timeout')) * 1000).toBeGreaterThan(gatewayKeepAliveMs);
    // The workers' default is the one .env.example shows.
    expect(interpolate(flag(litellm.command, '--num_workers'), hostEnv)).toBe(envExample.LITELLM_NUM_WORKERS);
    expect(interpolate(flag(litellm.command, '--num_workers'), {})).toBe(envExample.LITELLM_NUM_WORKERS);

    const script = read('scripts/run-litellm.sh');
    expect(script).toContain('--num_workers "${LITELLM_NUM_WORKERS:-' + envExample.LITELLM_NUM_WORKERS + '}"');
    expect(script).toContain(`--keepalive_timeout ${flag(litellm.command, '--keepalive_timeout')}`);
    expect(script).toContain('LITELLM_LOG="${LITELLM_LOG:-ERROR}"');
    expect(script).toMatch(/"\$@"\s*$/); // its arguments are passed on, last, so that they win

    // The bench's "shipped" sidecar is read from this compose file; "before" stays as it was.
    expect(read('bench/run.mjs')).toContain("config: 'litellm-config.yaml', ...composeLiteLLM()");
  });

  it('runs PostgreSQL with pgvector, a pg_isready healthcheck and a volume', () => {
    expect(postgres.image).toBe('pgvector/pgvector:pg16');
    expect(postgres.healthcheck.test.join(' ')).toContain('pg_isready');
    expect(postgres.volumes[0]).toMatch(/^postgres-data:/);
    expect(compose.volumes).toHaveProperty('postgres-data');
  });

  it("gives the gateway every setting of .env, and an environment its own schema accepts, pointing at the other two services", () => {
    expect(gateway.env_file).toBe('.env');
    const known = Object.keys(new Environment());
    // What compose sets itself are gateway variables; they win over .env.
    expect(Object.keys(gateway.environment).filter((key) => !known.includes(key))).toEqual([]);
    const environment: Record<string, string> = {
      ...envExample,
      ...Object.fromEntries(Object.entries(gateway.environment as Record<string, string>).map(([key, value]) => [key, interpolate(String(value), hostEnv)])),
    };
    // Every gateway variable reaches the container, from .env or from compose.
    expect(known.filter((key) => !(key in environment))).toEqual([]);

    const validated = validateEnvironment(environment);
    expect(validated.NODE_ENV).toBe('production');
    expect(validated.HOST).toBe('0.0.0.0');
    expect(validated.LITELLM_URL).toBe(`http://litellm:${litellm.command[litellm.command.indexOf('--port') + 1]}`);
    expect(validated.LITELLM_API_KEY).toBe('sk-compose-test');
    const database = new URL(validated.DATABASE_URL!);
    expect([database.hostname, database.port, database.username, database.pathname]).toEqual(['postgres', '5432', envExample.POSTGRES_USER, `/${envExample.POSTGRES_DB}`]);
    // The keys compose cannot run without stop it when missing.
    expect(() => interpolate(String(gateway.environment.GATEWAY_API_KEYS), { ...hostEnv, GATEWAY_API_KEYS: '' })).toThrow('GATEWAY_API_KEYS is required');
    expect(() => interpolate(String(gateway.environment.LITELLM_API_KEY), { ...hostEnv, LITELLM_MASTER_KEY: '' })).toThrow('LITELLM_MASTER_KEY is required');

    expect(gateway.depends_on).toEqual({
      postgres: { condition: 'service_healthy' },
      litellm: { condition: 'service_healthy' },
    });
    expect(gateway.build).toBe('.');
    // The image name the Kubernetes base deploys.
    expect(gateway.image).toBe(`llm-gateway:${JSON.parse(read('package.json')).version}`);
    expect(gateway.ports[0]).toBe('${GATEWAY_HOST_PORT:-3000}:3000');

    // Stopping waits for the drain and what is in flight: streams, or a non-streamed call of up to LLM_TIMEOUT_MS.
    const grace = Number(/^(\d+)s$/.exec(gateway.stop_grace_period)![1]);
    const inFlightMs = Math.max(validated.SHUTDOWN_STREAM_TIMEOUT_MS, validated.LLM_TIMEOUT_MS);
    expect(grace).toBeGreaterThanOrEqual((validated.SHUTDOWN_DRAIN_MS + inFlightMs) / 1000 + 5);
  });

  it('lists in .env.example every variable the compose file reads', () => {
    const names = interpolated(read('docker-compose.yml'));
    expect(names.length).toBeGreaterThan(0);
    expect([...new Set(names.filter((name) => !(name in envExample)))]).toEqual([]);
    expect(envExample).not.toHaveProperty('LITELLM_SALT_KEY');
  });

  it("is valid against the Compose Specification's JSON schema, as written and once interpolated", () => {
    const validate = composeSchemaValidator();
    for (const document of [compose, interpolateAll(compose, hostEnv)]) {
      const valid = validate(document);
      expect(validate.errors ?? []).toEqual([]);
      expect(valid).toBe(true);
    }

    // And the schema does reject what Compose would: a misspelt key, a map where a list belongs, an unknown condition.
    const broken = (change: (copy: typeof compose) => void) => {
      const copy = structuredClone(compose);
      change(copy);
      return validate(copy);
    };
    expect(broken((copy) => (copy.services.gateway.enviroment = {}))).toBe(false);
    expect(broken((copy) => (copy.services.gateway.ports = { http: 3000 }))).toBe(false);
    expect(broken((copy) => (copy.services.gateway.depends_on.postgres.condition = 'service_ready'))).toBe(false);
  });

  it('builds a multi-stage, non-root image with an init process and a liveness healthcheck', () => {
    expect(dockerfile.match(/^FROM /gm)).toHaveLength(2);
    expect(dockerfile).toMatch(/ARG NODE_IMAGE=node:\d+-[a-z]+-slim/);
    expect(dockerfile).toContain('npm ci --omit=dev');
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["\/usr\/bin\/tini", "--"\]$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK [\s\S]*\/health\/live/m);
    expect(dockerfile).toContain('CMD ["node", "dist/src/main.js"]');
  });

  it("routes every model the gateway defaults to, with keys only from the environment, retrying in LiteLLM alone", () => {
    const models = litellmConfig.model_list.map((entry: { model_name: string }) => entry.model_name);
    const defaults = validateEnvironment({});

    expect(models).toEqual(expect.arrayContaining([defaults.DEFAULT_CHAT_MODEL, defaults.DEFAULT_EMBEDDING_MODEL, DEFAULT_LLM_MODEL, DEFAULT_LLM_FALLBACK_MODEL]));
    expect(litellmConfig.model_list.map((entry: { litellm_params: { model: string } }) => entry.litellm_params.model)).toEqual([
      'openai/gpt-4o',
      'anthropic/claude-3-5-sonnet-20241022',
      'openai/text-embedding-3-small',
    ]);
    for (const entry of litellmConfig.model_list) expect(entry.litellm_params.api_key).toMatch(/^os\.environ\/[A-Z_]+_API_KEY$/);
    expect(read('litellm-config.yaml')).not.toMatch(/sk-[A-Za-z0-9]/);
    expect(litellmConfig.general_settings.master_key).toBe('os.environ/LITELLM_MASTER_KEY');
    expect(litellmConfig.litellm_settings).toMatchObject({ json_logs: true, request_timeout: 600 });
    expect(litellmConfig.litellm_settings.set_verbose).not.toBe(true);
    expect(litellmConfig.router_settings.num_retries).toBeGreaterThan(0);
    // One deployment per model: a cooldown would only turn provider errors into LiteLLM 429s (see the config).
    expect(litellmConfig.router_settings.disable_cooldowns).toBe(true);
    expect(defaults.LLM_MAX_RETRIES).toBe(0); // one retry layer
  });

  it('starts the real LiteLLM with the shipped config and fake provider keys, offline, and it reports healthy', async () => {
    const proxy = await startLiteLLM(join(PROJECT_ROOT, 'litellm-config.yaml'), {
      OPENAI_API_KEY: 'sk-fake-openai',
      ANTHROPIC_API_KEY: 'sk-ant-fake',
    });
    try {
      expect(await readJson(await fetch(`${proxy.url}/health/liveliness`))).toBe("I'm alive!");
      expect(await readJson(await fetch(`${proxy.url}/health/readiness`))).toMatchObject({ status: 'healthy' });
      const models = await readJson(await fetch(`${proxy.url}/v1/models`, { headers: { authorization: `Bearer ${proxy.masterKey}` } }));
      expect(models.data.map((model: { id: string }) => model.id).sort()).toEqual(['claude-3-5-sonnet', 'gpt-4o', 'text-embedding-3-small']);

      // And a gateway pointed at it is ready.
      const gatewayApp = await startGateway({ LITELLM_URL: proxy.url, LITELLM_API_KEY: proxy.masterKey });
      try {
        expect((await fetch(`${gatewayApp.url}/health/ready`)).status).toBe(200);
      } finally {
        await gatewayApp.close();
      }
    } finally {
      await proxy.stop();
    }
  }, 180_000);
});
