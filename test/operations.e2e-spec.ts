import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createTestDatabase, TestDatabase } from './support/database';
import { FakeUpstream } from './support/fake-upstream';
import { temporaryDataDir } from './support/gateway';
import { startGatewayProcess } from './support/gateway-process';
import { freePort, PROJECT_ROOT } from './support/litellm';

const MAIN = join(PROJECT_ROOT, 'dist', 'src', 'main.js');
const CLI_DATA_SOURCE = 'dist/src/database/cli-data-source.js';
const TYPEORM = join(PROJECT_ROOT, 'node_modules', '.bin', 'typeorm');
const CALLER_KEY = 'operations-caller-key-0123456789';

/** Runs the production build until it exits (or is killed after `timeoutMs`), with only `env` and PATH. */
function runMain(env: Record<string, string>, timeoutMs = 20_000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('production without Docker (production build)', () => {
  const production = { NODE_ENV: 'production', LITELLM_API_KEY: 'sk-test', GATEWAY_API_KEYS: CALLER_KEY, LOG_LEVEL: 'info' };

  it('refuses to start with NODE_ENV=production and no DATABASE_URL, saying why, and touches no embedded database', async () => {
    const dataDir = temporaryDataDir();
    const { code, output } = await runMain({ ...production, DATA_DIR: dataDir });
    expect(code).toBe(1);
    expect(output).toContain('DATABASE_URL: required when NODE_ENV=production');
    expect(output).toContain('ALLOW_EMBEDDED_DATABASE=true');
    expect(readdirSync(dataDir)).toEqual([]);
  });

  it('runs on the embedded database in production when ALLOW_EMBEDDED_DATABASE=true', async () => {
    const dataDir = temporaryDataDir();
    const gateway = await startGatewayProcess({ ...production, DATA_DIR: dataDir, ALLOW_EMBEDDED_DATABASE: 'true' }, 60_000);
    try {
      const created = await fetch(`${gateway.url}/v1/organizations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CALLER_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'Embedded' }),
      });
      // A caller key may not create organizations: the answer proves the app is up on its database.
      expect(created.status).toBe(403);
      const listed = await fetch(`${gateway.url}/v1/organizations`, { headers: { authorization: `Bearer ${CALLER_KEY}` } });
      expect(listed.status).toBe(200);
      expect(readdirSync(dataDir).length).toBeGreaterThan(0);
    } finally {
      await gateway.stop();
    }
    expect(await gateway.exited).toBe(0);
  }, 90_000);
});

/** Runs a command to its end; never throws: the test reads the exit code and the output. */
async function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(command, args, { ...options, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

/**
 * The README's "Production without Docker" on the build: an install without dev dependencies (what
 * `npm prune --omit=dev` leaves after `npm ci && npm run build`), migrated with the typeorm CLI, served by `npm run start:prod`.
 */
describe('a production install without dev dependencies', () => {
  let database: TestDatabase;
  let appDir: string;
  // Without this project's node_modules/.bin (npx jest puts it on PATH): only what the install itself brings.
  const path = (process.env.PATH ?? '').split(':').filter((entry) => !entry.includes('node_modules')).join(':');
  const npmEnv = () => ({ PATH: path, HOME: process.env.HOME, npm_config_cache: process.env.npm_config_cache });

  beforeAll(async () => {
    database = await createTestDatabase();
    appDir = temporaryDataDir();
    for (const file of ['package.json', 'package-lock.json']) cpSync(join(PROJECT_ROOT, file), join(appDir, file));
    cpSync(join(PROJECT_ROOT, 'dist'), join(appDir, 'dist'), { recursive: true });
    const install = await run('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: appDir, env: npmEnv() });
    if (install.code !== 0) throw new Error(`npm ci --omit=dev failed:\n${install.output}`);
  }, 180_000);

  afterAll(async () => {
    await database?.drop();
  });

  it('has no Nest CLI, so `npm start` cannot work there', async () => {
    expect(existsSync(join(appDir, 'node_modules', '@nestjs', 'cli'))).toBe(false);
    const start = await run('npm', ['start'], { cwd: appDir, env: npmEnv() });
    expect(start.code).not.toBe(0);
    expect(start.output).toMatch(/nest: (command )?not found/);
  });

  it('migrates with the typeorm CLI and serves with `npm run start:prod`', async () => {
    writeFileSync(join(appDir, '.env'), `NODE_ENV=production\nDATABASE_URL=${database.url}\n`);
    const migrated = await run(join(appDir, 'node_modules', '.bin', 'typeorm'), ['-d', CLI_DATA_SOURCE, 'migration:run'], { cwd: appDir, env: npmEnv() });
    expect(migrated).toMatchObject({ code: 0 });
    expect(migrated.output).toContain('AddOrganizationLimits1764489600000');

    const port = await freePort();
    const child = spawn('npm', ['run', 'start:prod'], {
      cwd: appDir,
      // .env gives NODE_ENV and DATABASE_URL, as for the migration; the rest comes from the environment.
      env: { ...npmEnv(), PORT: String(port), HOST: '127.0.0.1', LITELLM_API_KEY: 'sk-test', GATEWAY_API_KEYS: CALLER_KEY, MIGRATIONS_RUN: 'false', SHUTDOWN_DRAIN_MS: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // npm runs node in a shell: the signal goes to the whole group
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    // The node process under npm holds the pipes until it has exited too.
    const exited = new Promise((resolve) => child.stdout.once('close', resolve));
    try {
      const deadline = Date.now() + 30_000;
      while (!(await fetch(`http://127.0.0.1:${port}/health/live`).then((response) => response.ok, () => false))) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`npm run start:prod did not come up:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const listed = await fetch(`http://127.0.0.1:${port}/v1/organizations`, { headers: { authorization: `Bearer ${CALLER_KEY}` } });
      expect(listed.status).toBe(200);
      expect(output).toContain(`database: PostgreSQL server 127.0.0.1:5432/${database.name}`);
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
      await exited;
    }
  }, 90_000);
});

/**
 * `npm run migration:*` is `nest build && typeorm -d dist/src/database/cli-data-source.js <command>`. The suite runs
 * that typeorm command on the build, from a directory of its own holding only a `.env`, as an operator would.
 */
describe('migration CLI', () => {
  let database: TestDatabase;
  let workDir: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    workDir = temporaryDataDir();
  });

  afterAll(async () => {
    await database?.drop();
  });

  const typeorm = async (command: string, env: Record<string, string> = {}) => {
    try {
      const { stdout, stderr } = await promisify(execFile)(TYPEORM, ['-d', join(PROJECT_ROOT, CLI_DATA_SOURCE), command], {
        cwd: workDir,
        env: { PATH: process.env.PATH, ...env },
      });
      return { code: 0, output: stdout + stderr };
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      return { code: failed.code ?? -1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
    }
  };
  const columns = async () =>
    (await database.query<{ column_name: string }>(`SELECT column_name FROM information_schema.columns WHERE table_name = 'organizations'`)).map(
      (row) => row.column_name,
    );

  it('is what the npm scripts run', () => {
    const scripts = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>;
    for (const command of ['run', 'revert', 'show', 'generate']) {
      expect(scripts[`migration:${command}`]).toBe(`nest build && typeorm -d ${CLI_DATA_SOURCE} migration:${command}`);
    }
  });

  it('reads DATABASE_URL from .env and needs nothing but the database settings, in production too', async () => {
    // No LITELLM_API_KEY, no caller keys: the gateway itself would refuse to start with this.
    writeFileSync(join(workDir, '.env'), `NODE_ENV=production\nDATABASE_URL=${database.url}\nPORT=not-a-port\n`);

    const run = await typeorm('migration:run');
    expect(run).toMatchObject({ code: 0 });
    expect(await columns()).toEqual(expect.arrayContaining(['name', 'llm_model', 'budget_period']));
    expect(existsSync(join(workDir, '.data'))).toBe(false); // not the embedded database

    const shown = await typeorm('migration:show');
    expect(shown.code).toBe(0);
    expect(shown.output).toMatch(/\[X\] \d+ AddOrganizationLimits1764489600000/);

    expect(await typeorm('migration:revert')).toMatchObject({ code: 0 });
    expect(await columns()).not.toContain('budget_period');
    expect((await typeorm('migration:show')).output).toMatch(/\[ \] AddOrganizationLimits1764489600000/);
    expect(await typeorm('migration:run')).toMatchObject({ code: 0 });
    expect(await columns()).toContain('budget_period');
  }, 60_000);

  it('lets a variable already set win over .env, as the gateway does', async () => {
    writeFileSync(join(workDir, '.env'), `NODE_ENV=production\nDATABASE_URL=postgres://nobody@127.0.0.1:1/nowhere\n`);
    const shown = await typeorm('migration:show', { DATABASE_URL: database.url });
    expect(shown.code).toBe(0);
    expect(shown.output).toMatch(/\[X\] \d+ CreateOrganizations1763740800000/);
  }, 30_000);

  it('refuses the embedded database in production, as the gateway does, rather than migrate the wrong one', async () => {
    writeFileSync(join(workDir, '.env'), 'NODE_ENV=production\n');
    const shown = await typeorm('migration:show');
    expect(shown.code).not.toBe(0);
    expect(shown.output).toContain('DATABASE_URL: required when NODE_ENV=production');
    expect(existsSync(join(workDir, '.data'))).toBe(false);
  }, 30_000);
});

describe('boot and shutdown lines (production build)', () => {
  const upstream = new FakeUpstream();
  let database: TestDatabase;

  beforeAll(async () => {
    await upstream.start();
    database = await createTestDatabase();
  });

  afterAll(async () => {
    await upstream.stop();
    await database?.drop();
  });

  it('says at boot what it runs on, without a secret, and last at shutdown what it drained', async () => {
    // The test server trusts local connections: the password is there only to be kept out of the log.
    const databaseUrl = new URL(database.url);
    databaseUrl.password = 'canary-db-password';
    const redisPort = await freePort(); // no Redis there: limits fail open, the boot goes on
    const gateway = await startGatewayProcess(
      {
        NODE_ENV: 'production',
        LOG_LEVEL: 'info',
        LITELLM_URL: upstream.url,
        LITELLM_API_KEY: 'sk-canary-litellm-key',
        GATEWAY_API_KEYS: CALLER_KEY,
        DATABASE_URL: databaseUrl.href,
        REDIS_URL: `redis://:canary-redis-password@127.0.0.1:${redisPort}/0`,
        SHUTDOWN_DRAIN_MS: '600',
      },
      60_000,
    );
    const lines = () =>
      gateway
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line));

    const boot = lines().find((line) => line.context === 'Boot');
    expect(boot).toMatchObject({
      level: 'info',
      msg:
        `llm-gateway listening on ${gateway.url} (production); database: PostgreSQL server 127.0.0.1:5432/${database.name}; ` +
        `LiteLLM: ${upstream.url}; caller auth: on; Swagger: off; limits: Redis 127.0.0.1:${redisPort}/0, fail open; usage ledger: on; metrics: /metrics`,
      database: { kind: 'server', at: `127.0.0.1:5432/${database.name}` },
    });

    // One slow call in flight at the signal and still when the server closes; one more arriving during the drain.
    upstream.respondNext({ delayMs: 2_000 });
    const headers = { authorization: `Bearer ${CALLER_KEY}`, 'content-type': 'application/json' };
    const slow = fetch(`${gateway.url}/v1/chat`, { method: 'POST', headers, body: JSON.stringify({ messages: [{ role: 'user', content: 'slow' }] }) });
    while (upstream.inFlight === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    gateway.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await fetch(`${gateway.url}/v1/models`, { headers })).status).toBe(200);
    expect((await slow).status).toBe(200);
    expect(await gateway.exited).toBe(0);

    const last = lines().at(-1);
    expect(last).toMatchObject({
      level: 'info',
      context: 'ShutdownService',
      msg: expect.stringMatching(/^Shut down \(SIGTERM\) in \d+\.\d s: 2 request\(s\) finished after the signal \(1 in flight at the signal, 1 arriving during the drain, 1 still in flight when the server closed\); 0 stream\(s\) open when it closed, 0 ended by SHUTDOWN_STREAM_TIMEOUT_MS$/),
      shutdown: { signal: 'SIGTERM', inFlightAtSignal: 1, arrivedDuringDrain: 1, servedAfterSignal: 2, inFlightAtClose: 1, streamsAtClose: 0, streamsEnded: 0 },
    });
    expect(last.shutdown.durationMs).toBeGreaterThanOrEqual(1_500);

    for (const secret of ['canary-db-password', 'canary-redis-password', 'sk-canary-litellm-key', CALLER_KEY]) {
      expect(gateway.output()).not.toContain(secret);
    }
  }, 90_000);
});
