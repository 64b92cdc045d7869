import { ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { FakeUpstream } from '../test/support/fake-upstream';
import { freePort } from '../test/support/litellm';

/**
 * What `npm run dev` (scripts/dev.ts) starts: the test suites' fake provider, the real LiteLLM in front of it (or in
 * front of the real providers when their keys are set), and the gateway's build (`node dist/src/main.js`).
 * test/readme-examples.e2e-spec.ts runs the whole of it and every README example against it.
 */

/** The project's folder: this file runs from scripts/ under ts-jest and from dist/dev/scripts/ once compiled. */
export const PROJECT_ROOT = (() => {
  let folder = __dirname;
  while (!existsSync(join(folder, 'package.json'))) {
    if (dirname(folder) === folder) throw new Error(`No package.json above ${__dirname}`);
    folder = dirname(folder);
  }
  return folder;
})();

export const LITELLM_BIN = join(PROJECT_ROOT, '.tools', 'litellm-venv', 'bin', 'litellm');
export const DEV_LITELLM_CONFIG = join(PROJECT_ROOT, 'litellm.dev-config.yaml');
export const REAL_LITELLM_CONFIG = join(PROJECT_ROOT, 'litellm-config.yaml');
/** The development master key: LiteLLM's, and the gateway's default LITELLM_API_KEY outside production. */
export const DEV_MASTER_KEY = 'sk-llm-gateway-dev';
const PROVIDER_KEYS = ['OPENAI_API_KEY', 'ANTHROPIC_API_KEY'];

export interface ChildService {
  name: string;
  url: string;
  child: ChildProcess;
  /** Everything the process printed so far (the last 200 kB). */
  output(): string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

export type LineSink = (name: string, line: string) => void;


/** Fails with a plain message when something already listens on the port (another LiteLLM, another gateway). */
export async function assertPortFree(port: number, what: string): Promise<void> {
  const server = createServer();
  await new Promise<void>((done, fail) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      fail(new Error(error.code === 'EADDRINUSE' ? `Port ${port} (${what}) is taken: stop what uses it, or choose another port.` : error.message)),
    );
    server.listen(port, '127.0.0.1', done);
  });
  await new Promise<void>((done) => server.close(() => done()));
}

/** The provider keys in the environment: with any, `npm run dev` talks to the real providers. */
export function providerKeysIn(env: NodeJS.ProcessEnv): string[] {
  return PROVIDER_KEYS.filter((name) => (env[name] ?? '') !== '');
}

/** The fake provider of the test suites: deterministic chat, streams, tool calls and embeddings. */
export async function startFakeProvider(port = 0): Promise<FakeUpstream> {
  return new FakeUpstream().start(port);
}

function spawnService(name: string, command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string, onLine?: LineSink) {
  const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  let partial = '';
  const append = (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    log = (log + text).slice(-200_000);
    if (!onLine) return;
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) onLine(name, line);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return { child, output: () => log, exited, stop };
}

async function waitUntil(url: string, service: Omit<ChildService, 'url' | 'name'>, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (service.child.exitCode !== null) {
      throw new Error(`${name} exited with code ${service.child.exitCode} before it was ready:\n${service.output().slice(-3000)}`);
    }
    if (await fetch(url).then((response) => response.ok, () => false)) return;
    if (Date.now() > deadline) {
      await service.stop();
      throw new Error(`${name} was not ready within ${timeoutMs} ms:\n${service.output().slice(-3000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

export interface LiteLLMOptions {
  port: number;
  /** The fake provider's base URL; without it LiteLLM gets the shipped config and the real providers. */
  fakeProviderUrl?: string;
  masterKey?: string;
  onLine?: LineSink;
}

/** The real LiteLLM from .tools/litellm-venv (scripts/ensure-litellm.sh), offline, waited for until live. */
export async function startLiteLLMProcess(options: LiteLLMOptions): Promise<ChildService> {
  if (!existsSync(LITELLM_BIN)) throw new Error(`${LITELLM_BIN} is missing: run \`bash scripts/ensure-litellm.sh\`.`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LITELLM_MASTER_KEY: options.masterKey ?? DEV_MASTER_KEY,
    LITELLM_LOCAL_MODEL_COST_MAP: 'True',
    ...(options.fakeProviderUrl && { FAKE_PROVIDER_API_BASE: options.fakeProviderUrl, FAKE_PROVIDER_API_KEY: 'sk-fake-provider' }),
  };
  // The gateway's database, not LiteLLM's: with one, LiteLLM would set up Prisma.
  delete env.DATABASE_URL;
  const config = options.fakeProviderUrl ? DEV_LITELLM_CONFIG : REAL_LITELLM_CONFIG;
  const args = ['--config', config, '--port', String(options.port), '--host', '127.0.0.1', '--num_workers', '1', '--keepalive_timeout', '10'];
  const service = spawnService('litellm', LITELLM_BIN, args, env, PROJECT_ROOT, options.onLine);
  const url = `http://127.0.0.1:${options.port}`;
  await waitUntil(`${url}/health/liveliness`, service, 'LiteLLM', 120_000);
  return { name: 'litellm', url, ...service };
}

export interface GatewayOptions {
  port: number;
  litellmUrl: string;
  /** Where it runs: where it reads .env and keeps ./.data. */
  cwd?: string;
  onLine?: LineSink;
}

/** The gateway's build (`nest build` first), as `npm start` runs it. */
export async function startGatewayProcess(options: GatewayOptions): Promise<ChildService> {
  const main = join(PROJECT_ROOT, 'dist', 'src', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npx nest build\`.`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: 'development',
    PORT: String(options.port),
    LITELLM_URL: options.litellmUrl,
    LITELLM_API_KEY: DEV_MASTER_KEY,
    // Ctrl-C should stop at once, not serve a load balancer's drain.
    SHUTDOWN_DRAIN_MS: '0',
  };
  const service = spawnService('gateway', process.execPath, [main], env, options.cwd ?? PROJECT_ROOT, options.onLine);
  const url = `http://localhost:${options.port}`;
  await waitUntil(`http://127.0.0.1:${options.port}/health/live`, service, 'The gateway', 60_000);
  return { name: 'gateway', url, ...service };
}

export interface DevStack {
  gateway: ChildService;
  litellm: ChildService;
  /** Absent when provider keys were found and LiteLLM talks to the real providers. */
  fakeProvider?: FakeUpstream;
  stop(): Promise<void>;
}

export interface DevStackOptions {
  gatewayPort: number;
  litellmPort: number;
  gatewayCwd?: string;
  onLine?: LineSink;
}

export async function startDevStack(options: DevStackOptions): Promise<DevStack> {
  const useFake = providerKeysIn(process.env).length === 0;
  const started: Array<{ stop(): Promise<void> }> = [];
  const stop = async () => {
    for (const service of started.reverse()) await service.stop();
  };
  try {
    const fakeProvider = useFake ? await startFakeProvider() : undefined;
    if (fakeProvider) started.push(fakeProvider);
    const litellm = await startLiteLLMProcess({ port: options.litellmPort, fakeProviderUrl: fakeProvider && `${fakeProvider.url}/v1`, onLine: options.onLine });
    started.push(litellm);
    const gateway = await startGatewayProcess({
      port: options.gatewayPort,
      litellmUrl: litellm.url,
      cwd: options.gatewayCwd,
      onLine: options.onLine,
    });
    started.push(gateway);
    return { gateway, litellm, fakeProvider, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
