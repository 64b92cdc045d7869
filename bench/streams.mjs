// The concurrent-streams scenario: the real load on the gateway is many long streams at once. Each level
// opens N streamed chat completions together against every row (the paced upstream direct, the relay
// floor, the SDK hop, the gateway, and through LiteLLM), in alternating rounds, and reports per row the
// time to first byte, the delay added to each chunk, the serving process's CPU per chunk and peak memory.
// run.mjs starts the processes and builds the scenarios; this file measures and reports them.
import { listenOverflows, percentile, processTree, treeCpuMicros, treeRssMb } from './measure.mjs';
import { closeConnections, openConnections, runStreams } from './stream-client.mjs';

/** What the paced upstream sends per stream: a 2-second answer of 40 chunks, as a model generating tokens. */
export const STREAM_CHUNKS = 40;
export const STREAM_PACE_MS = 50;

export const streamScenarioName = (streams) => `${streams} concurrent streams`;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Samples the resident memory of a process tree every 100 ms until stopped; returns the peak in MB. */
function sampleRss(pids) {
  let peak = treeRssMb(pids);
  const timer = setInterval(() => (peak = Math.max(peak, treeRssMb(pids))), 100);
  return () => {
    clearInterval(timer);
    return Math.max(peak, treeRssMb(pids));
  };
}

/**
 * scenarios: [{ name, streams, variants: { [row]: { url, body, headers, readyUrl, server } } }], readyUrl
 * being a cheap GET of the server's, and server the child process that serves the row (its CPU and memory
 * are the row's). Returns a Map `${scenario}|${row}` → the row's figures over all rounds.
 */
const WARM_UP_STREAMS = 1000;

export async function measureStreams(scenarios, { rounds }) {
  // Warm-up, once per row and not reported: JIT, the hops' connection pools, the organization's cached
  // preferences. As large as the row's largest measured run (up to WARM_UP_STREAMS): 50 streams left every row's first round
  // cold (the relay's time to first byte at 1,000 streams 1,034 ms in round 1, 266 ms in rounds 2 and 3), and
  // the rows with more code (the gateway's) colder than the others.
  const largest = (row) => Math.max(...scenarios.filter((scenario) => row in scenario.variants).map((scenario) => scenario.streams));
  const warmed = new Set();
  for (const scenario of scenarios) {
    for (const [row, variant] of Object.entries(scenario.variants)) {
      if (warmed.has(row)) continue;
      warmed.add(row);
      const agents = await openConnections({ readyUrl: variant.readyUrl, streams: Math.min(largest(row), WARM_UP_STREAMS) });
      await runStreams(agents, { ...variant, chunks: STREAM_CHUNKS });
      closeConnections(agents);
    }
  }

  const results = new Map();
  for (let round = 1; round <= rounds; round += 1) {
    for (const scenario of scenarios) {
      for (const [row, variant] of Object.entries(scenario.variants)) {
        const agents = await openConnections({ readyUrl: variant.readyUrl, streams: scenario.streams });
        const pids = processTree(variant.server.pid);
        const cpuBefore = treeCpuMicros(pids);
        const stopSampling = sampleRss(pids);
        const overflowsBefore = listenOverflows();
        const run = await runStreams(agents, { ...variant, chunks: STREAM_CHUNKS });
        const cpu = treeCpuMicros(pids) - cpuBefore;
        const peakRss = stopSampling();
        const overflows = listenOverflows() - overflowsBefore;
        closeConnections(agents);

        const key = `${scenario.name}|${row}`;
        const sofar = results.get(key) ?? {
          streams: 0,
          completed: 0,
          chunks: 0,
          ttfbMs: [],
          delayMs: [],
          errors: 0,
          errorKinds: {},
          cpu: 0,
          peakRssMb: 0,
          clientCpuPercent: 0,
          wallS: [],
          listenOverflows: 0,
        };
        sofar.streams += run.streams;
        sofar.completed += run.completed;
        sofar.chunks += run.chunks;
        for (const value of run.ttfbMs) sofar.ttfbMs.push(value);
        for (const value of run.delayMs) sofar.delayMs.push(value);
        sofar.errors += run.errors;
        for (const [kind, count] of Object.entries(run.errorKinds)) sofar.errorKinds[kind] = (sofar.errorKinds[kind] ?? 0) + count;
        sofar.cpu += cpu;
        sofar.peakRssMb = Math.max(sofar.peakRssMb, peakRss);
        sofar.clientCpuPercent = Math.max(sofar.clientCpuPercent, run.clientCpuPercent);
        sofar.wallS.push(run.wallS);
        sofar.listenOverflows += overflows;
        results.set(key, sofar);
        process.stderr.write(
          `round ${round}/${rounds} ${scenario.name} ${row}: ${run.completed}/${run.streams} streams, ${run.chunks} chunks, ` +
            `${run.errors} errors${run.errors ? ` ${JSON.stringify(run.errorKinds)}` : ''}; TTFB p50 ${percentile(run.ttfbMs, 50).toFixed(1)} ms; ` +
            `${(cpu / Math.max(run.chunks, 1)).toFixed(0)} µs CPU/chunk; ${peakRss.toFixed(0)} MB; ${run.wallS.toFixed(1)} s; ` +
            `load generator ${run.clientCpuPercent.toFixed(0)}% of a core; ${overflows} listen queue overflows\n`,
        );
        // Lets the closed connections and the servers' garbage settle before the next row.
        await sleep(500);
      }
    }
  }
  return results;
}

/** The gateway rows and the relay floor, by the names run.mjs gives them. */
export const ROW = {
  direct: 'direct',
  relay: 'relay hop',
  sdk: 'SDK hop',
  gateway: 'gateway',
  organization: 'gateway, organization chat',
};

/**
 * The issue's targets for the gateway, as ratios within the run: [name, measured, met]. Each names the level
 * it was computed at: referenceStreams (1,000) for CPU and time to first byte, largestStreams (2,000) for
 * errors and memory, or the nearest level run when --quick or --only left that one out.
 */
function gatewayTargets(scenarios, rows, { referenceStreams, largestStreams }) {
  // Levels with the gateway's rows (a LiteLLM variant may add levels of its own).
  const levels = scenarios.filter((scenario) => ROW.gateway in scenario.variants).map((scenario) => scenario.streams);
  if (levels.length === 0) return [];
  const nearest = (wanted) => levels.reduce((best, level) => (Math.abs(level - wanted) < Math.abs(best - wanted) ? level : best));
  const find = (streams, row) => rows.find((r) => r.scenario.streams === streams && r.row === row);
  const checks = [];
  const ratioCheck = (name, measured, floor, limit) => {
    if (!measured || !floor) return checks.push([name, 'not run', false]);
    const ratio = measured / floor;
    checks.push([name, `${ratio.toFixed(2)}x`, ratio <= limit]);
  };

  const at = nearest(referenceStreams);
  const gateway = find(at, ROW.gateway);
  const relay = find(at, ROW.relay);
  const organization = find(at, ROW.organization);
  ratioCheck(`${at} streams: gateway CPU per chunk ≤ 1.3x the relay floor's`, gateway.cpuPerChunk, relay?.cpuPerChunk, 1.3);
  ratioCheck(`${at} streams: gateway TTFB p50 ≤ 2x the relay floor's`, gateway.ttfb50, relay?.ttfb50, 2);
  ratioCheck(`${at} streams: gateway TTFB p99 ≤ 3x the relay floor's`, gateway.ttfb99, relay?.ttfb99, 3);
  ratioCheck(`${at} streams: organization chat CPU per chunk within 10% of plain chat`, organization?.cpuPerChunk, gateway.cpuPerChunk, 1.1);
  ratioCheck(`${at} streams: organization chat TTFB p50 within 10% of plain chat`, organization?.ttfb50, gateway.ttfb50, 1.1);

  const largest = nearest(largestStreams);
  const gatewayRows = [find(largest, ROW.gateway), find(largest, ROW.organization)].filter(Boolean);
  const errors = gatewayRows.reduce((sum, r) => sum + r.result.errors, 0);
  const peak = Math.max(...gatewayRows.map((r) => r.result.peakRssMb));
  checks.push([`${largest} streams: zero gateway errors`, String(errors), errors === 0]);
  checks.push([`${largest} streams: gateway peak RSS ≤ 300 MB`, `${peak.toFixed(0)} MB`, peak <= 300]);

  const sdk = find(at, ROW.sdk);
  if (sdk) {
    // The SDK hop is the ceiling while the openai SDK makes every call: where it misses a target, so must the gateway.
    const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}x` : 'not run');
    checks.push([`(for scale) ${at} streams: gateway CPU per chunk / the SDK hop's`, ratio(gateway.cpuPerChunk, sdk.cpuPerChunk), true]);
    checks.push([`(for scale) ${at} streams: the SDK hop alone, CPU per chunk / the relay floor's`, ratio(sdk.cpuPerChunk, relay?.cpuPerChunk), true]);
    checks.push([`(for scale) ${at} streams: the SDK hop alone, TTFB p50 / the relay floor's`, ratio(sdk.ttfb50, relay?.ttfb50), true]);
  }
  return checks;
}

/** The table, the notes on how it was measured, and the targets. */
export function renderStreams(scenarios, results, { referenceStreams, largestStreams, litellm }) {
  const rows = [];
  for (const scenario of scenarios) {
    for (const row of Object.keys(scenario.variants)) {
      const result = results.get(`${scenario.name}|${row}`);
      rows.push({
        scenario,
        row,
        result,
        ttfb50: percentile(result.ttfbMs, 50),
        ttfb99: percentile(result.ttfbMs, 99),
        delay50: percentile(result.delayMs, 50),
        delay99: percentile(result.delayMs, 99),
        cpuPerChunk: result.cpu / Math.max(result.chunks, 1),
      });
    }
  }
  const fixed = (value, digits) => (Number.isFinite(value) ? value.toFixed(digits) : '–');
  const header =
    '| streams | variant | streams completed | chunks | TTFB p50 / p99 ms | added delay per chunk p50 / p99 ms | server CPU µs/chunk | server peak RSS MB | wall s | load generator CPU % | listen queue overflows | errors |';
  const line = '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|';
  const table = [
    header,
    line,
    ...rows.map(({ scenario, row, result, ttfb50, ttfb99, delay50, delay99, cpuPerChunk }) => {
      const errors = result.errors ? `${result.errors} ${JSON.stringify(result.errorKinds)}` : '0';
      const wall = result.wallS.reduce((sum, value) => sum + value, 0) / result.wallS.length;
      return (
        `| ${scenario.streams} | ${row} | ${result.completed}/${result.streams} | ${result.chunks} | ${fixed(ttfb50, 1)} / ${fixed(ttfb99, 1)} | ` +
        `${fixed(delay50, 2)} / ${fixed(delay99, 2)} | ${fixed(cpuPerChunk, 0)} | ${fixed(result.peakRssMb, 0)} | ${fixed(wall, 1)} | ` +
        `${fixed(result.clientCpuPercent, 0)} | ${result.listenOverflows} | ${errors} |`
      );
    }),
  ].join('\n');

  const checks = gatewayTargets(scenarios, rows, { referenceStreams, largestStreams });
  // The LiteLLM sidecar's target: as shipped it serves twice the streams of the config shipped before, at no
  // worse a time to first byte (p50; p99 for scale).
  if (litellm?.before && litellm?.shipped) {
    const find = (streams, row) => rows.find((r) => r.scenario.streams === streams && r.row === row);
    for (const streams of litellm.before.levels) {
      const before = find(streams, litellm.before.row);
      const shipped = find(2 * streams, litellm.shipped.row);
      if (!before) continue;
      const name = `LiteLLM sidecar: shipped at ${2 * streams} streams, TTFB p50 ≤ before at ${streams}`;
      if (!shipped) {
        checks.push([name, 'not run', false]);
        continue;
      }
      checks.push([name, `${fixed(shipped.ttfb50, 0)} ms vs ${fixed(before.ttfb50, 0)} ms`, shipped.ttfb50 <= before.ttfb50]);
      checks.push([`(for scale) the same, TTFB p99`, `${fixed(shipped.ttfb99, 0)} ms vs ${fixed(before.ttfb99, 0)} ms`, true]);
      checks.push([`(for scale) the same, server CPU µs per chunk`, `${fixed(shipped.cpuPerChunk, 0)} vs ${fixed(before.cpuPerChunk, 0)}`, true]);
    }
  }

  const targets = ['| target | measured | met |', '|---|---:|:---:|', ...checks.map(([name, value, ok]) => `| ${name} | ${value} | ${ok ? 'yes' : 'NO'} |`)].join(
    '\n',
  );
  const notes = [
    `- Each stream: ${STREAM_CHUNKS} content chunks ${STREAM_PACE_MS} ms apart from the paced upstream (\`bench/paced-upstream.mjs\`), then the finish and usage chunks and [DONE]. The N streams of a level are sent at once, each on a kept-alive connection of its own opened before the clock starts (as callers' pools hold them): opening 2,000 connections inside the run overflows a busy server's listen queue (Node's default backlog, 511, the gateway's included) and measures the kernel's SYN-ACK retransmissions and resets instead of the hop`,
    `- Rows: direct = the paced upstream; relay hop = bare node:http piping the bytes through undici, nothing parsed (the floor); SDK hop = bare node:http calling the upstream through the openai SDK on the gateway's transport and re-emitting each delta as the gateway does, its connection pool uncapped where the transport's default caps it; gateway = the production build, plain and organization chat; LiteLLM rows (with --litellm) = LiteLLM pointed at the paced upstream, alone and behind a gateway: "before" as the project shipped it before tuning (\`bench/litellm-before.yaml\`, 1 worker), "shipped" as docker-compose.yml runs it (\`litellm-config.yaml\`, its flags and LITELLM_LOG)`,
    `- TTFB: from the request being handed to the kernel to the first content chunk. Added delay: arrival of each chunk at the load generator minus its send stamp in the upstream, both on CLOCK_MONOTONIC; it includes the load generator's own event-loop lag, which the direct row shows`,
    `- Server CPU µs/chunk: user + system CPU of the process serving the row (its whole process tree) over the chunks delivered. Server peak RSS: its resident memory sampled every 100 ms`,
    `- Load generator CPU: of one core, the highest of the rounds; near 100 means the generator, not the server, set the pace. Listen queue overflows: machine-wide (TcpExt ListenOverflows), during the row's runs; each one is a connection retried a second or more later, or reset`,
  ].join('\n');
  const failures = rows.filter((r) => r.result.errors > 0).map((r) => `${r.scenario.name}|${r.row}`);
  return {
    text: `${table}\n\n${targets}`,
    markdown: `## Concurrent streams\n\n${notes}\n\n${table}\n\n### Targets (concurrent streams)\n\n${targets}\n`,
    failures,
    streams: rows.reduce((sum, r) => sum + r.result.streams, 0),
  };
}
