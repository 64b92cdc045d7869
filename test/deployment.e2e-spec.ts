import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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

describe('deployment files', () => {
  const { postgres, litellm, gateway } = compose.services;

  it('pins LiteLLM to the version the tests run', () => {
    expect(pinnedLiteLLM).toMatch(/^\d+\.\d+\.\d+$/);
    expect(litellm.image).toBe(`ghcr.io/berriai/litellm:v${pinnedLiteLLM}`);
  });

  it('runs LiteLLM with the shipped config, its keys from the host, and a liveness healthcheck the image can run', () => {
    expect(litellm.command).toEqual(['--config', '/app/config.yaml', '--port', '4000']);
    expect(litellm.volumes).toContain('./litellm-config.yaml:/app/config.yaml:ro');
    expect(Object.keys(litellm.environment)).toEqual(
      expect.arrayContaining(['LITELLM_MASTER_KEY', 'LITELLM_SALT_KEY', 'OPENAI_API_KEY', 'ANTHROPIC_API_KEY']),
    );
    const healthcheck = litellm.healthcheck.test.join(' ');
    expect(healthcheck).toContain('wget'); // the image has no curl
    expect(healthcheck).toContain('/health/liveliness');
    expect(healthcheck).not.toMatch(/\/health(\s|$|")/); // GET /health calls every model
    expect(litellm.ports[0]).toMatch(/^\$\{LITELLM_HOST_PORT:-4010\}:4000$/);
  });

  it('runs PostgreSQL with pgvector, a pg_isready healthcheck and a volume', () => {
    expect(postgres.image).toBe('pgvector/pgvector:pg16');
    expect(postgres.healthcheck.test.join(' ')).toContain('pg_isready');
    expect(postgres.volumes[0]).toMatch(/^postgres-data:/);
    expect(compose.volumes).toHaveProperty('postgres-data');
  });

  it("gives the gateway an environment its own schema accepts, pointing at the other two services", () => {
    const hostEnv = {
      LITELLM_MASTER_KEY: 'sk-compose-test',
      LITELLM_SALT_KEY: 'sk-salt',
      GATEWAY_API_KEYS: 'compose-caller-key-0123456789',
    };
    const environment = Object.fromEntries(
      Object.entries(gateway.environment as Record<string, string>).map(([key, value]) => [key, interpolate(String(value), hostEnv)]),
    );
    const known = Object.keys(new Environment());

    expect(Object.keys(environment).filter((key) => !known.includes(key))).toEqual([]);
    const validated = validateEnvironment(environment);
    expect(validated.NODE_ENV).toBe('production');
    expect(validated.LITELLM_URL).toBe(`http://litellm:${litellm.command[litellm.command.indexOf('--port') + 1]}`);
    expect(validated.LITELLM_API_KEY).toBe('sk-compose-test');
    const database = new URL(validated.DATABASE_URL!);
    expect([database.hostname, database.port]).toEqual(['postgres', '5432']);
    expect(gateway.depends_on).toEqual({
      postgres: { condition: 'service_healthy' },
      litellm: { condition: 'service_healthy' },
    });
    expect(gateway.build).toBe('.');
    expect(gateway.ports[0]).toBe('${GATEWAY_HOST_PORT:-3000}:3000');
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
