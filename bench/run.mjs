// npm run bench [-- --quick] [-- --litellm] [-- --only=<text>]
// Measures what the gateway's hop costs its callers: each scenario runs direct against a zero-latency
// upstream, through a bare node:http reference hop, and through the gateway's production build, in
// alternating rounds so that the figures of one run are comparable. The concurrent-streams scenario
// (streams.mjs) does the same with many long streams at once from a paced upstream. Targets are reported,
// never enforced; errors and non-2xx answers fail the run (that is what CI's --quick smoke run checks).
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import pg from 'pg';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { cpuMicros, peakRssMb, percentile } from './measure.mjs';
import { measureStreams, renderStreams, ROW, STREAM_CHUNKS, STREAM_PACE_MS, streamScenarioName } from './streams.mjs';
import { measureTokenCounts, tokenCountChecks } from './token-counts.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const WITH_LITELLM = args.includes('--litellm');
const DURATION_S = QUICK ? 2 : 6;
const ROUNDS = QUICK ? 1 : 3;
const TTFB_SAMPLES = QUICK ? 100 : 400;
/** --only=<text>: run just the scenarios whose name contains it (for profiling; the report is partial). */
const ONLY = args.find((arg) => arg.startsWith('--only='))?.slice('--only='.length);
const CALLER_KEY = 'bench-caller-key-0123456789abcdef';
const ADMIN_KEY = 'bench-admin-key-0123456789abcdef';
const LITELLM_MASTER_KEY = 'sk-llm-gateway-bench-master';
const LITELLM_TEST_CONFIG = 'test/support/litellm.test-config.yaml';

/** The concurrent-streams levels; --quick keeps one small level so that CI stays fast. */
const STREAM_LEVELS = QUICK ? [50] : [200, 1000, 2000];
/**
 * The LiteLLM sidecars the concurrent-streams scenario measures (with --litellm). Each gets a LiteLLM of its
 * own pointed at the paced upstream (OPENAI_BASE_URL), and a gateway in front of it, and adds the rows
 * "<name> alone" and "gateway → <name>" at each of its levels. "before" is the sidecar as the project shipped
 * it before tuning (its config kept in bench/litellm-before.yaml, one worker, default logging); "shipped" is
 * the sidecar as docker-compose.yml runs it now: litellm-config.yaml, the compose command's flags (the
 * workers at LITELLM_NUM_WORKERS's default) and its literal environment (LITELLM_LOG). The target: shipped
 * serves twice the streams at no worse a time to first byte.
 */
const LITELLM_STREAM_VARIANTS = [
  { name: 'LiteLLM before (1 worker)', role: 'before', config: 'bench/litellm-before.yaml', args: ['--num_workers', '1'], env: {}, levels: QUICK ? [50] : [200] },
  { name: 'LiteLLM shipped', role: 'shipped', config: 'litellm-config.yaml', ...composeLiteLLM(), levels: QUICK ? [100] : [200, 400] },
];

/** The flags and literal environment docker-compose.yml runs LiteLLM with (--config and --port set here). */
function composeLiteLLM() {
  const service = parseYaml(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')).services.litellm;
  const resolve = (value) => String(value).replace(/\$\{\w+:-([^}]*)\}/g, '$1');
  const args = [];
  for (let i = 0; i < service.command.length; i += 2) {
    if (!['--config', '--port'].includes(service.command[i])) args.push(service.command[i], resolve(service.command[i + 1]));
  }
  const env = Object.fromEntries(Object.entries(service.environment).filter(([, value]) => !String(value).includes('${')));
  const workers = args[args.indexOf('--num_workers') + 1];
  return { name: `LiteLLM shipped (${workers} workers)`, args, env };
}

/** --only=<text> applies to every scenario name, the concurrent-streams levels' included. */
const selected = (scenarioName) => !ONLY || scenarioName.includes(ONLY);

const children = [];
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts a helper that prints its port on its first stdout line. */
function startPortPrinter(script, extraArgs = []) {
  const child = spawn(process.execPath, [join(ROOT, 'bench', script), ...extraArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.stdout.once('data', (data) => resolve({ child, url: `http://127.0.0.1:${String(data).trim()}` }));
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
}

async function waitForOk(url, timeoutMs, describe) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    await sleep(200);
  }
  throw new Error(`${describe} did not come up at ${url}`);
}

/**
 * A database of the run's own on the local PostgreSQL server (BENCH_DATABASE_ADMIN_URL), or, when no
 * server answers, the embedded one. Returns the gateway's DATABASE_URL (or undefined) and a cleanup.
 */
async function benchDatabase() {
  const adminUrl = process.env.BENCH_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const name = `llm_gateway_bench_${process.pid}`;
  const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 2_000 });
  try {
    await admin.connect();
    await admin.query(`CREATE DATABASE "${name}"`);
  } catch {
    await admin.end().catch(() => undefined);
    return { url: undefined, drop: async () => undefined };
  }
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    drop: async () => {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await client.end();
    },
  };
}

let databaseUrl;

async function startGateway(litellmUrl, name, extraEnv = {}) {
  const main = join(ROOT, 'dist', 'src', 'main.js');
  if (!existsSync(main)) throw new Error('dist/src/main.js is missing: `npm run bench` builds it first');
  const port = await freePort();
  // BENCH_GATEWAY_NODE_ARGS: flags NODE_OPTIONS refuses, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile.
  const nodeArgs = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, main], {
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      LITELLM_URL: litellmUrl,
      LITELLM_API_KEY: LITELLM_MASTER_KEY,
      GATEWAY_API_KEYS: CALLER_KEY,
      GATEWAY_ADMIN_API_KEYS: ADMIN_KEY,
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : { DATA_DIR: mkdtempSync(join(os.tmpdir(), `llm-gateway-bench-${name}-`)), ALLOW_EMBEDDED_DATABASE: 'true' }),
      SHUTDOWN_DRAIN_MS: '0',
      // For experiments with V8 flags (heap sizing and the like) on the gateway alone.
      ...(process.env.BENCH_GATEWAY_NODE_OPTIONS && { NODE_OPTIONS: process.env.BENCH_GATEWAY_NODE_OPTIONS }),
      ...extraEnv,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  await waitForOk(`${url}/health/live`, 30_000, 'the gateway');
  return { child, url };
}

async function startLiteLLM(upstreamUrl, { config = LITELLM_TEST_CONFIG, args = ['--num_workers', '1'], env: variantEnv = {} } = {}) {
  const bin = join(ROOT, '.tools', 'litellm-venv', 'bin', 'litellm');
  if (!existsSync(bin)) throw new Error('--litellm needs the test virtualenv: run `bash scripts/ensure-litellm.sh`');
  const port = await freePort();
  const env = {
    ...process.env,
    LITELLM_MASTER_KEY,
    LITELLM_LOCAL_MODEL_COST_MAP: 'True',
    // The test config's models, and the shipped configs' OpenAI models, all go to the bench's upstream.
    FAKE_UPSTREAM_API_BASE: `${upstreamUrl}/v1`,
    FAKE_PROVIDER_API_KEY: 'sk-bench-provider',
    OPENAI_BASE_URL: `${upstreamUrl}/v1`,
    OPENAI_API_KEY: 'sk-bench-provider',
    ANTHROPIC_API_KEY: 'sk-ant-bench-provider',
    ...variantEnv,
  };
  delete env.DATABASE_URL;
  const child = spawn(bin, ['--config', join(ROOT, config), '--port', String(port), '--host', '127.0.0.1', ...args], {
    env,
    stdio: 'ignore',
  });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  await waitForOk(`${url}/health/liveliness`, 300_000, 'LiteLLM');
  return { child, url };
}

/** One autocannon run; latencies are kept at full resolution (its histogram rounds to whole ms). */
function load({ url, body, headers = {}, connections, duration = currentDuration }) {
  return new Promise((resolve, reject) => {
    const latencies = [];
    const instance = autocannon(
      {
        url,
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', ...headers },
        connections,
        duration,
      },
      (error, result) => {
        if (error) return reject(error);
        resolve({
          // Over the time it ran: autocannon stops on its once-a-second tick, so a run asked for 1.5 s lasts 2.
          rps: result.requests.total / result.duration,
          latencies,
          failures: result.errors + result.timeouts + result.non2xx,
          requests: result.requests.total,
        });
      },
    );
    instance.on('response', (_client, _status, _bytes, responseTime) => latencies.push(responseTime));
  });
}

/** Time to the first byte of a streamed answer, one request after another on one kept-alive connection. */
async function timeToFirstByte({ url, body, headers = {} }) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const latencies = [];
  let failures = 0;
  for (let i = 0; i < TTFB_SAMPLES; i += 1) {
    const started = performance.now();
    await new Promise((resolve) => {
      const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
        let first = true;
        if (res.statusCode !== 200) failures += 1;
        res.on('data', () => {
          if (first) latencies.push(performance.now() - started);
          first = false;
        });
        res.on('end', resolve);
      });
      req.on('error', () => {
        failures += 1;
        resolve();
      });
      req.end(body);
    });
  }
  agent.destroy();
  return { rps: 0, latencies, failures, requests: TTFB_SAMPLES };
}

/**
 * A hop carrying N streams holds about 2N sockets (N callers, N upstream connections), in each of the hops,
 * the gateway and LiteLLM, and N in this load generator. Node raises its own soft limit on open files to the
 * hard one at startup, and the processes it starts inherit it, so only the hard limit matters; raising it
 * takes root (`ulimit -n 65536` in a root shell, or the container's nofile limit).
 */
function warnOnLowOpenFileLimit(needed) {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((text) => text.startsWith('Max open files'));
  const soft = line?.trim().split(/\s+/)[3];
  if (soft === undefined || soft === 'unlimited' || Number(soft) >= needed) return;
  console.error(`warning: the streams need about ${needed} open files per process and the limit is ${soft}: run \`ulimit -n 65536\` (as root) first`);
}

async function createOrganization(gatewayUrl, name, limits = undefined) {
  const created = await fetch(`${gatewayUrl}/v1/organizations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
    body: JSON.stringify({ name, llmModel: 'gpt-4o', llmFallbackModel: 'claude-3-5-sonnet', ...(limits && { limits }) }),
  });
  if (created.status !== 201) throw new Error(`creating the bench organization answered ${created.status}`);
  return created.json();
}

/** The concurrent-streams levels --only selected, LiteLLM variants' levels included with --litellm. */
function streamLevels() {
  const litellmLevels = WITH_LITELLM ? LITELLM_STREAM_VARIANTS.flatMap((variant) => variant.levels) : [];
  return [...new Set([...STREAM_LEVELS, ...litellmLevels])].sort((a, b) => a - b).filter((streams) => selected(streamScenarioName(streams)));
}

/**
 * The concurrent-streams scenario, on processes of its own: the paced upstream, the relay and SDK hops and a
 * gateway in front of it (so that this gateway's peak memory is the streams' alone), and with --litellm a
 * LiteLLM and a gateway per LiteLLM variant. Returns its report, or undefined when --only left no level.
 */
async function runStreamScenarios(messages) {
  const levels = streamLevels();
  if (levels.length === 0) return undefined;
  const upstream = await startPortPrinter('paced-upstream.mjs', [String(STREAM_CHUNKS), String(STREAM_PACE_MS)]);
  const relay = await startPortPrinter('relay-proxy.mjs', [upstream.url]);
  const sdkHop = await startPortPrinter('sdk-reference-proxy.mjs', [upstream.url, '--uncapped-pool']);
  const gateway = await startGateway(upstream.url, 'streams');
  const organization = await createOrganization(gateway.url, 'Bench Streams Inc');
  const litellms = [];
  if (WITH_LITELLM) {
    for (const variant of LITELLM_STREAM_VARIANTS.filter((candidate) => candidate.levels.some((streams) => levels.includes(streams)))) {
      const litellm = await startLiteLLM(upstream.url, variant);
      litellms.push({ variant, litellm, gateway: await startGateway(litellm.url, 'streams-litellm') });
    }
  }

  const caller = { authorization: `Bearer ${CALLER_KEY}` };
  const openAiStream = JSON.stringify({ model: 'gpt-4o', messages, stream: true, stream_options: { include_usage: true } });
  const gatewayStream = JSON.stringify({ model: 'gpt-4o', messages, stream: true });
  const scenarios = levels.map((streams) => {
    const variants = {};
    if (STREAM_LEVELS.includes(streams)) {
      const openAi = (hop) => ({ url: `${hop.url}/v1/chat/completions`, body: openAiStream, readyUrl: `${hop.url}/health`, server: hop.child });
      const viaGateway = (path) => ({ url: `${gateway.url}${path}`, body: gatewayStream, headers: caller, readyUrl: `${gateway.url}/health/live`, server: gateway.child });
      variants[ROW.direct] = openAi(upstream);
      variants[ROW.relay] = openAi(relay);
      variants[ROW.sdk] = openAi(sdkHop);
      variants[ROW.gateway] = viaGateway('/v1/chat');
      variants[ROW.organization] = viaGateway(`/v1/organizations/${organization.id}/chat`);
    }
    for (const { variant, litellm, gateway: litellmGateway } of litellms.filter((entry) => entry.variant.levels.includes(streams))) {
      variants[`${variant.name} alone`] = {
        url: `${litellm.url}/v1/chat/completions`,
        body: openAiStream,
        headers: { authorization: `Bearer ${LITELLM_MASTER_KEY}` },
        readyUrl: `${litellm.url}/health/liveliness`,
        server: litellm.child,
      };
      variants[`gateway → ${variant.name}`] = {
        url: `${litellmGateway.url}/v1/chat`,
        body: gatewayStream,
        headers: caller,
        readyUrl: `${litellmGateway.url}/health/live`,
        server: litellmGateway.child,
      };
    }
    return { name: streamScenarioName(streams), streams, variants };
  });

  const results = await measureStreams(scenarios, { rounds: ROUNDS });
  const litellmRows = Object.fromEntries(LITELLM_STREAM_VARIANTS.map((variant) => [variant.role, { row: `${variant.name} alone`, levels: variant.levels }]));
  return renderStreams(scenarios, results, { referenceStreams: 1000, largestStreams: 2000, litellm: WITH_LITELLM ? litellmRows : undefined });
}

const packageVersion = (name) => {
  try {
    return JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return '?';
  }
};

async function main() {
  if (streamLevels().length > 0) warnOnLowOpenFileLimit(2 * Math.max(...streamLevels()) + 1024);
  const database = await benchDatabase();
  databaseUrl = database.url;
  const upstream = await startPortPrinter('fake-upstream.mjs');
  const reference = await startPortPrinter('reference-proxy.mjs', [upstream.url]);
  const sdkReference = await startPortPrinter('sdk-reference-proxy.mjs', [upstream.url]);
  const gateway = await startGateway(upstream.url, 'direct');
  const caller = { authorization: `Bearer ${CALLER_KEY}` };

  const organization = await createOrganization(gateway.url, 'Bench Inc');
  // The same gateway with the usage ledger off: what recording every call costs.
  const unrecorded = await startGateway(upstream.url, 'ledger-off', { USAGE_LEDGER_ENABLED: 'false' });
  // A gateway keeping limits in Redis, and an organization with every limit set (none of them reached): what
  // admission (one Redis round trip) and the end-of-call reconciliation cost.
  const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/14';
  const limited = await startGateway(upstream.url, 'limits', { REDIS_URL: redisUrl });
  // Redis's own time for the limits (INFO commandstats), for capacity planning: what one Redis can serve.
  const redis = new Redis(redisUrl);
  // The same process with an organization without limits: the baseline the limits targets compare with, so
  // that nothing but admission and reconciliation differs (not the process, not its warm-up).
  const unlimitedOrganization = await createOrganization(limited.url, 'Bench Unlimited');
  const limitedOrganization = await createOrganization(limited.url, 'Bench Limited', {
    requestsPerMinute: 1_000_000,
    tokensPerMinute: 1_000_000_000,
    concurrentRequests: 10_000,
    tokenBudget: 1_000_000_000_000,
    budgetPeriod: 'month',
  });

  // About 1 KB of conversation.
  const messages = [
    { role: 'system', content: 'You are a concise assistant for an internal platform team. '.repeat(5).trim() },
    { role: 'user', content: 'Summarise the following deployment notes in two sentences. '.repeat(11).trim() },
  ];
  const openAiChat = JSON.stringify({ model: 'gpt-4o', messages });
  const gatewayChat = JSON.stringify({ model: 'gpt-4o', messages });
  const openAiStream = JSON.stringify({ model: 'gpt-4o', messages, stream: true, stream_options: { include_usage: true } });
  const gatewayStream = JSON.stringify({ model: 'gpt-4o', messages, stream: true });
  const text = 'The quick brown fox jumps over the lazy dog, then files a ticket about it.';
  const openAiEmbeddings = JSON.stringify({ model: 'text-embedding-3-small', input: [text], encoding_format: 'float' });
  const gatewayEmbeddings = JSON.stringify({ input: text });

  const direct = (path) => `${upstream.url}${path}`;
  const scenarios = [
    {
      name: 'chat, 1 connection',
      kind: 'latency',
      variants: {
        direct: () => load({ url: direct('/v1/chat/completions'), body: openAiChat, connections: 1 }),
        'reference hop': () => load({ url: `${reference.url}/v1/chat/completions`, body: openAiChat, connections: 1 }),
        'SDK hop': () => load({ url: `${sdkReference.url}/v1/chat/completions`, body: openAiChat, connections: 1 }),
        gateway: () => load({ url: `${gateway.url}/v1/chat`, body: gatewayChat, headers: caller, connections: 1 }),
        'gateway, OpenAI route': () => load({ url: `${gateway.url}/openai/v1/chat/completions`, body: openAiChat, headers: caller, connections: 1 }),
        'gateway, organization chat': () =>
          load({ url: `${gateway.url}/v1/organizations/${organization.id}/chat`, body: gatewayChat, headers: caller, connections: 1 }),
        'gateway, usage ledger off': () => load({ url: `${unrecorded.url}/v1/chat`, body: gatewayChat, headers: caller, connections: 1 }),
        'gateway with Redis, organization chat, no limits': () =>
          load({ url: `${limited.url}/v1/organizations/${unlimitedOrganization.id}/chat`, body: gatewayChat, headers: caller, connections: 1 }),
        'gateway, organization chat, limits on Redis': () =>
          load({ url: `${limited.url}/v1/organizations/${limitedOrganization.id}/chat`, body: gatewayChat, headers: caller, connections: 1 }),
      },
    },
    {
      name: 'chat, 32 connections',
      kind: 'throughput',
      variants: {
        direct: () => load({ url: direct('/v1/chat/completions'), body: openAiChat, connections: 32 }),
        'reference hop': () => load({ url: `${reference.url}/v1/chat/completions`, body: openAiChat, connections: 32 }),
        'SDK hop': () => load({ url: `${sdkReference.url}/v1/chat/completions`, body: openAiChat, connections: 32 }),
        gateway: () => load({ url: `${gateway.url}/v1/chat`, body: gatewayChat, headers: caller, connections: 32 }),
        'gateway, organization chat': () =>
          load({ url: `${gateway.url}/v1/organizations/${organization.id}/chat`, body: gatewayChat, headers: caller, connections: 32 }),
        'gateway, OpenAI route': () => load({ url: `${gateway.url}/openai/v1/chat/completions`, body: openAiChat, headers: caller, connections: 32 }),
        'gateway, usage ledger off': () => load({ url: `${unrecorded.url}/v1/chat`, body: gatewayChat, headers: caller, connections: 32 }),
        'gateway with Redis, organization chat, no limits': () =>
          load({ url: `${limited.url}/v1/organizations/${unlimitedOrganization.id}/chat`, body: gatewayChat, headers: caller, connections: 32 }),
        'gateway, organization chat, limits on Redis': () =>
          load({ url: `${limited.url}/v1/organizations/${limitedOrganization.id}/chat`, body: gatewayChat, headers: caller, connections: 32 }),
      },
    },
    {
      name: 'embeddings (1536 floats), 1 connection',
      kind: 'latency',
      variants: {
        direct: () => load({ url: direct('/v1/embeddings'), body: openAiEmbeddings, connections: 1 }),
        gateway: () => load({ url: `${gateway.url}/v1/embeddings`, body: gatewayEmbeddings, headers: caller, connections: 1 }),
      },
    },
    {
      name: 'embeddings (1536 floats), 32 connections',
      kind: 'throughput',
      variants: {
        direct: () => load({ url: direct('/v1/embeddings'), body: openAiEmbeddings, connections: 32 }),
        'reference hop': () => load({ url: `${reference.url}/v1/embeddings`, body: openAiEmbeddings, connections: 32 }),
        'SDK hop': () => load({ url: `${sdkReference.url}/v1/embeddings`, body: openAiEmbeddings, connections: 32 }),
        gateway: () => load({ url: `${gateway.url}/v1/embeddings`, body: gatewayEmbeddings, headers: caller, connections: 32 }),
      },
    },
    {
      name: 'streamed chat, time to first byte, 1 connection',
      kind: 'latency',
      variants: {
        direct: () => timeToFirstByte({ url: direct('/v1/chat/completions'), body: openAiStream }),
        gateway: () => timeToFirstByte({ url: `${gateway.url}/v1/chat`, body: gatewayStream, headers: caller }),
      },
    },
  ];

  let litellmGateway;
  const litellmScenarioName = (connections) => `chat through LiteLLM, ${connections} connection${connections > 1 ? 's' : ''}`;
  if (WITH_LITELLM && [1, 32].some((connections) => selected(litellmScenarioName(connections)))) {
    const litellm = await startLiteLLM(upstream.url);
    litellmGateway = await startGateway(litellm.url, 'litellm');
    const litellmHeaders = { authorization: `Bearer ${LITELLM_MASTER_KEY}` };
    for (const connections of [1, 32]) {
      scenarios.push({
        name: litellmScenarioName(connections),
        kind: connections === 1 ? 'latency' : 'throughput',
        variants: {
          direct: () => load({ url: direct('/v1/chat/completions'), body: openAiChat, connections }),
          'LiteLLM alone': () => load({ url: `${litellm.url}/v1/chat/completions`, body: openAiChat, headers: litellmHeaders, connections }),
          'gateway → LiteLLM': () => load({ url: `${litellmGateway.url}/v1/chat`, body: gatewayChat, headers: caller, connections }),
        },
      });
    }
  }

  if (ONLY) scenarios.splice(0, scenarios.length, ...scenarios.filter((scenario) => selected(scenario.name)));

  // Warm-up: JIT, connection pools, the organization's cached preferences.
  for (const scenario of scenarios) for (const run of Object.values(scenario.variants)) await warm(run);

  // CPU per request of the process that serves each variant: steadier than req/s on a shared machine.
  const servers = {
    direct: upstream.child,
    'reference hop': reference.child,
    'SDK hop': sdkReference.child,
    gateway: gateway.child,
    'gateway, organization chat': gateway.child,
    'gateway, OpenAI route': gateway.child,
    'gateway, usage ledger off': unrecorded.child,
    'gateway with Redis, organization chat, no limits': limited.child,
    'gateway, organization chat, limits on Redis': limited.child,
    ...(litellmGateway && { 'gateway → LiteLLM': litellmGateway.child }),
  };
  const results = new Map();
  const measure = async (scenario, variant) => {
    const server = servers[variant];
    const cpuBefore = server ? cpuMicros(server.pid) : 0;
    const scriptsBefore = variant === LIMITS_PAIR[1] ? await redisScripts(redis) : undefined;
    const result = await scenario.variants[variant]();
    const cpu = server ? cpuMicros(server.pid) - cpuBefore : NaN;
    const key = `${scenario.name}|${variant}`;
    const sofar = results.get(key) ?? { rps: [], latencies: [], failures: 0, requests: 0, cpu: 0, redis: { calls: 0, usec: 0 } };
    sofar.cpu += cpu;
    if (scriptsBefore) {
      const scriptsAfter = await redisScripts(redis);
      sofar.redis.calls += scriptsAfter.calls - scriptsBefore.calls;
      sofar.redis.usec += scriptsAfter.usec - scriptsBefore.usec;
    }
    sofar.rps.push(result.rps);
    for (const latency of result.latencies) sofar.latencies.push(latency);
    sofar.failures += result.failures;
    sofar.requests += result.requests;
    results.set(key, sofar);
    return result;
  };
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const scenario of scenarios) {
      for (const variant of Object.keys(scenario.variants)) {
        const pair = LIMITS_PAIR.includes(variant) ? LIMITS_PAIR : [variant];
        if (variant !== pair[0]) continue; // measured with the first of its pair
        const slices = pair.length > 1 ? PAIR_SLICES : 1;
        // The pair's process sat idle while the other variants ran, and the first requests after an idle spell
        // are the slowest: both are warmed again, so that neither pays for it alone.
        if (pair.length > 1) for (const name of pair) await warm(scenario.variants[name]);
        currentDuration = DURATION_S / slices;
        const totals = new Map(pair.map((name) => [name, { requests: 0, failures: 0 }]));
        for (let slice = 0; slice < slices; slice += 1) {
          // A B B A A B …: each goes first, and follows the other, as often.
          for (const name of slice % 2 === 0 ? pair : [...pair].reverse()) {
            const result = await measure(scenario, name);
            totals.get(name).requests += result.requests;
            totals.get(name).failures += result.failures;
          }
        }
        currentDuration = DURATION_S;
        for (const [name, total] of totals) {
          process.stderr.write(
            `round ${round}/${ROUNDS} ${scenario.name} ${name}: ${total.requests} requests, ${total.failures} failed; ` +
              `gateway peak RSS so far ${peakRssMb(gateway.child.pid).toFixed(0)} MB\n`,
          );
        }
      }
    }
  }
  const rssMb = peakRssMb(gateway.child.pid);
  const streams = await runStreamScenarios(messages);

  if (scenarios.length > 0) {
    const report = ONLY ? renderRows(scenarios, results, rssMb) : render(scenarios, results, rssMb, measureTokenCounts(ROOT));
    console.log(report.text);
    if (!QUICK && !ONLY) {
      mkdirSync(join(ROOT, 'docs'), { recursive: true });
      writeFileSync(join(ROOT, 'docs', 'benchmarks.md'), streams ? `${report.markdown}\n${streams.markdown}` : report.markdown);
      console.log('written to docs/benchmarks.md');
    }
  }
  if (streams) console.log(`\n${streams.text}`);

  const failed = [...results.entries()].filter(([, result]) => result.failures > 0).map(([key]) => key);
  if (streams) failed.push(...streams.failures);
  redis.disconnect();
  children.forEach((child) => child.kill('SIGTERM'));
  await Promise.all(children.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)))));
  await database.drop();
  if (failed.length > 0) {
    console.error(`FAILED: errors or non-2xx answers in ${failed.join(', ')}`);
    process.exit(1);
  }
  const requests = [...results.values()].reduce((sum, result) => sum + result.requests, 0);
  console.log(`bench: ${requests} requests${streams ? ` and ${streams.streams} streams` : ''}, 0 errors, 0 non-2xx`);
}

/**
 * Warm-up runs are not reported: they are for the JIT and the connection pools. Each variant gets its own, long
 * enough that a process serving a single variant is as warm as one serving several.
 */
const WARM_UP_S = QUICK ? 1 : 3;
/**
 * The two variants the limits targets compare run on one process, alternating in slices of each round's time:
 * the machine's load drifts over seconds (all of it shares 2 cores), and a 10% target needs both sides to see
 * the same drift. Both are warmed again before each round's slices, and they take turns going first: the
 * process idles while the other variants run, and the slice that came first after that idle spell (always the
 * one without limits, before) ran up to 10% slower, which made the limits look cheaper than they are.
 */
const LIMITS_PAIR = ['gateway with Redis, organization chat, no limits', 'gateway, organization chat, limits on Redis'];
const PAIR_SLICES = QUICK ? 2 : 6;
let currentDuration = DURATION_S;
async function warm(run) {
  currentDuration = WARM_UP_S;
  try {
    await run();
  } finally {
    currentDuration = DURATION_S;
  }
}

/** The scripts Redis has run so far (the limits run nothing else there), and the time it spent in them. */
async function redisScripts(redis) {
  const stats = await redis.info('commandstats');
  const count = (command) => {
    const match = new RegExp(`cmdstat_${command}:calls=(\\d+),usec=(\\d+)`).exec(stats);
    return match ? { calls: Number(match[1]), usec: Number(match[2]) } : { calls: 0, usec: 0 };
  };
  const [evalsha, evaluated] = [count('evalsha'), count('eval')];
  return { calls: evalsha.calls + evaluated.calls, usec: evalsha.usec + evaluated.usec };
}

/** Redis's time per limited call, in µs, and the scripts per call (fewer than one: several calls per script). */
function redisPerCall(result) {
  return result.redis.calls > 0 ? `${(result.redis.usec / result.requests).toFixed(0)} µs in ${(result.redis.calls / result.requests).toFixed(2)} scripts` : '';
}

/** The serving process's CPU time per request, in µs; empty where the server is not ours to read. */
function cpuPerRequest(result) {
  return Number.isFinite(result.cpu) ? (result.cpu / result.requests).toFixed(0) : '';
}

function renderRows(scenarios, results, rssMb) {
  const lines = [];
  for (const scenario of scenarios) {
    const base = results.get(`${scenario.name}|direct`);
    for (const variant of Object.keys(scenario.variants)) {
      const result = results.get(`${scenario.name}|${variant}`);
      const rps = result.rps.reduce((sum, value) => sum + value, 0) / result.rps.length;
      const baseRps = base.rps.reduce((sum, value) => sum + value, 0) / base.rps.length;
      lines.push(
        `${scenario.name} | ${variant}: p50 ${percentile(result.latencies, 50).toFixed(3)} ms, ` +
          `mean ${(result.latencies.reduce((sum, value) => sum + value, 0) / result.latencies.length).toFixed(3)} ms, ` +
          `p99 ${percentile(result.latencies, 99).toFixed(3)} ms, ${rps.toFixed(0)} req/s (${(rps / baseRps).toFixed(3)} of direct), ` +
          `${cpuPerRequest(result)} µs CPU/request${result.redis.calls > 0 ? `, Redis ${redisPerCall(result)} per request` : ''}`,
      );
    }
  }
  return { text: `${lines.join('\n')}\npeak RSS of the gateway ${rssMb.toFixed(0)} MB` };
}

function render(scenarios, results, rssMb, tokenCounts) {
  const get = (scenario, variant) => results.get(`${scenario}|${variant}`);
  const mean = (values) => values.reduce((sum, value) => sum + value, 0) / values.length;
  const rows = [];
  const checks = [];
  for (const scenario of scenarios) {
    const base = get(scenario.name, 'direct');
    for (const variant of Object.keys(scenario.variants)) {
      const result = get(scenario.name, variant);
      const p50 = percentile(result.latencies, 50);
      const p99 = percentile(result.latencies, 99);
      const rps = mean(result.rps);
      rows.push({
        scenario: scenario.name,
        variant,
        requests: result.requests,
        p50: p50.toFixed(3),
        p99: p99.toFixed(3),
        added: variant === 'direct' ? '' : `+${(p50 - percentile(base.latencies, 50)).toFixed(3)} / +${(p99 - percentile(base.latencies, 99)).toFixed(3)}`,
        rps: scenario.kind === 'throughput' ? rps.toFixed(0) : '',
        ratio: scenario.kind === 'throughput' && variant !== 'direct' ? (rps / mean(base.rps)).toFixed(3) : '',
        cpu: cpuPerRequest(result),
        failures: result.failures,
      });
    }
  }
  const row = (scenario, variant) => rows.find((r) => r.scenario === scenario && r.variant === variant);
  const chat1 = row('chat, 1 connection', 'gateway');
  const [added50, added99] = chat1.added.replace(/\+/g, '').split(' / ').map(Number);
  const chat32 = row('chat, 32 connections', 'gateway');
  const org32 = row('chat, 32 connections', 'gateway, organization chat');
  const emb32 = row('embeddings (1536 floats), 32 connections', 'gateway');
  const reference32 = row('chat, 32 connections', 'reference hop');
  checks.push(['1 connection: gateway adds ≤ 0.5 ms p50', `${added50.toFixed(3)} ms`, added50 <= 0.5]);
  checks.push(['1 connection: gateway adds ≤ 3 ms p99', `${added99.toFixed(3)} ms`, added99 <= 3]);
  const addedMean = mean(get('chat, 1 connection', 'gateway').latencies) - mean(get('chat, 1 connection', 'direct').latencies);
  checks.push(['1 connection: gateway adds ≤ 0.8 ms mean', `${addedMean.toFixed(3)} ms`, addedMean <= 0.8]);
  checks.push(['32 connections: chat ≥ 0.15 of direct RPS', chat32.ratio, Number(chat32.ratio) >= 0.15]);
  checks.push(['32 connections: embeddings ≥ 0.20 of direct RPS', emb32.ratio, Number(emb32.ratio) >= 0.2]);
  const orgRatio = Number(org32.rps) / Number(chat32.rps);
  checks.push(['organization chat within 10% of plain chat RPS', orgRatio.toFixed(3), orgRatio >= 0.9]);
  const openAi32 = row('chat, 32 connections', 'gateway, OpenAI route');
  const openAiRatio = Number(openAi32.rps) / Number(chat32.rps);
  checks.push(['OpenAI route (/openai/v1/chat/completions) within 10% of /v1/chat RPS', openAiRatio.toFixed(3), openAiRatio >= 0.9]);
  const unrecorded32 = row('chat, 32 connections', 'gateway, usage ledger off');
  const ledgerRatio = Number(chat32.rps) / Number(unrecorded32.rps);
  checks.push(['usage ledger on: within 10% of the RPS with the ledger off', ledgerRatio.toFixed(3), ledgerRatio >= 0.9]);
  // Both on the gateway that keeps limits in Redis: one organization with every limit set, one without any.
  const limited1 = row('chat, 1 connection', 'gateway, organization chat, limits on Redis');
  const unlimited1 = row('chat, 1 connection', 'gateway with Redis, organization chat, no limits');
  const limitsAdded = Number(limited1.p50) - Number(unlimited1.p50);
  checks.push(['limits on Redis, 1 connection: adds ≤ 0.3 ms p50 to organization chat', `${limitsAdded.toFixed(3)} ms (${unlimited1.p50} → ${limited1.p50})`, limitsAdded <= 0.3]);
  const limited32 = row('chat, 32 connections', 'gateway, organization chat, limits on Redis');
  const unlimited32 = row('chat, 32 connections', 'gateway with Redis, organization chat, no limits');
  const limitsRatio = Number(limited32.rps) / Number(unlimited32.rps);
  checks.push(['limits on Redis, 32 connections: organization chat within 10% of it without limits', limitsRatio.toFixed(3), limitsRatio >= 0.9]);
  for (const scenario of ['chat, 1 connection', 'chat, 32 connections']) {
    const redisTime = redisPerCall(get(scenario, 'gateway, organization chat, limits on Redis'));
    checks.push([`(for capacity) Redis time per limited call, ${scenario.replace('chat, ', '')}: admission and release`, redisTime, true]);
  }
  checks.push(['peak RSS of the gateway ≤ 200 MB', `${rssMb.toFixed(0)} MB`, rssMb <= 200]);
  checks.push(...tokenCountChecks(tokenCounts));
  const totalFailures = rows.reduce((sum, r) => sum + r.failures, 0);
  checks.push(['zero errors and zero non-2xx', String(totalFailures), totalFailures === 0]);
  const share = (gateway, ceiling) => (Number(gateway.rps) / Number(ceiling.rps)).toFixed(3);
  const sdk32 = row('chat, 32 connections', 'SDK hop');
  const embSdk32 = row('embeddings (1536 floats), 32 connections', 'SDK hop');
  checks.push(['(for scale) chat at 32 connections: share of the reference hop the gateway reaches', share(chat32, reference32), true]);
  checks.push(['(for scale) chat at 32 connections: share of the SDK hop the gateway reaches', share(chat32, sdk32), true]);
  checks.push(['(for scale) embeddings at 32 connections: share of the SDK hop the gateway reaches', share(emb32, embSdk32), true]);

  const header =
    '| scenario | variant | requests | p50 ms | p99 ms | added p50 / p99 ms | req/s | ratio to direct | server CPU µs/request | errors + non-2xx |';
  const line = '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|';
  const table = [
    header,
    line,
    ...rows.map((r) => `| ${r.scenario} | ${r.variant} | ${r.requests} | ${r.p50} | ${r.p99} | ${r.added} | ${r.rps} | ${r.ratio} | ${r.cpu} | ${r.failures} |`),
  ].join('\n');
  const targets = ['| target | measured | met |', '|---|---:|:---:|', ...checks.map(([name, value, ok]) => `| ${name} | ${value} | ${ok ? 'yes' : 'NO'} |`)].join('\n');
  const cpus = os.cpus();
  const machine = [
    `- Machine: ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}`,
    `- Node ${process.version}; @nestjs/core ${packageVersion('@nestjs/core')}, fastify ${packageVersion('fastify')}, openai ${packageVersion('openai')}, autocannon ${packageVersion('autocannon')}`,
    `- Gateway: production build (NODE_ENV=production, LOG_LEVEL=warn, caller keys on), ${databaseUrl ? 'the local PostgreSQL server' : 'embedded PostgreSQL (PGlite)'}`,
    `- ${ROUNDS} alternating round(s) of ${DURATION_S} s per variant (the two limits variants are warmed again before each round, then alternate A B B A in ${PAIR_SLICES} slices of ${DURATION_S / PAIR_SLICES} s each); time to first byte over ${TTFB_SAMPLES} sequential requests per round`,
    `- Variants: direct = to the zero-latency upstream; reference hop = bare node:http proxy (keep-alive agent, JSON parsed and re-serialized); SDK hop = bare node:http calling the upstream through the openai SDK on the gateway's transport, the ceiling for a hop that must use the SDK; gateway = the production build`,
    `- Server CPU µs/request: user + system CPU of the process serving the variant, over the requests it served; it includes the process's background work (timers, GC, JIT), which dominates at low request rates (the LiteLLM rows)`,
    `- Load generator, upstream, reference hops and gateway share the machine: compare ratios within one run, not absolute figures across runs`,
  ].join('\n');
  const command = `npm run bench${QUICK || WITH_LITELLM ? ` -- ${[QUICK && '--quick', WITH_LITELLM && '--litellm'].filter(Boolean).join(' ')}` : ''}`;
  const markdown = `# Benchmark\n\nGenerated by \`${command}\` on ${new Date().toISOString()}.\n\n${machine}\n\n## Results\n\n${table}\n\n## Targets\n\n${targets}\n`;
  return { text: `${table}\n\n${targets}\n\npeak RSS ${rssMb.toFixed(0)} MB`, markdown };
}

main().catch((error) => {
  console.error(error);
  children.forEach((child) => child.kill('SIGKILL'));
  process.exit(1);
});
