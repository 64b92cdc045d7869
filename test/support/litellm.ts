import { ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';

export const PROJECT_ROOT = resolve(__dirname, '..', '..');
export const LITELLM_BIN = join(PROJECT_ROOT, '.tools', 'litellm-venv', 'bin', 'litellm');
/** A test-only key; LiteLLM refuses sk-1234 and keys without the sk- prefix. */
export const TEST_MASTER_KEY = 'sk-llm-gateway-test-master';

export interface RunningLiteLLM {
  url: string;
  masterKey: string;
  /** Everything LiteLLM printed so far. */
  output(): string;
  stop(): Promise<void>;
}

/** A port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

async function waitForLiveness(url: string, child: ChildProcess, output: () => string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`LiteLLM exited with code ${child.exitCode} before it was ready:\n${output().slice(-3000)}`);
    }
    try {
      const response = await fetch(`${url}/health/liveliness`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((done) => setTimeout(done, 250));
  }
  throw new Error(`LiteLLM was not live after ${timeoutMs} ms:\n${output().slice(-3000)}`);
}

/**
 * Starts the real LiteLLM proxy from the project's virtualenv (made by scripts/ensure-litellm.sh) with the
 * given config, offline, on a free port, and waits until it is live.
 */
export async function startLiteLLM(configPath: string, env: Record<string, string> = {}): Promise<RunningLiteLLM> {
  if (!existsSync(LITELLM_BIN)) {
    throw new Error(`${LITELLM_BIN} is missing: run \`bash scripts/ensure-litellm.sh\` (npm test does it first).`);
  }
  const port = await freePort();
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    LITELLM_MASTER_KEY: TEST_MASTER_KEY,
    LITELLM_LOCAL_MODEL_COST_MAP: 'True',
    ...env,
  };
  // With a database URL LiteLLM tries to set up Prisma; these tests run it without one.
  delete childEnv.DATABASE_URL;

  const child = spawn(LITELLM_BIN, ['--config', configPath, '--port', String(port), '--host', '127.0.0.1', '--num_workers', '1'], {
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const append = (chunk: Buffer) => {
    log = (log + chunk.toString('utf8')).slice(-200_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);

  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((done) => child.once('exit', done));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitForLiveness(url, child, () => log, 120_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, masterKey: TEST_MASTER_KEY, output: () => log, stop };
}
