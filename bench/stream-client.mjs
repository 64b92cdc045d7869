// The load generator of the concurrent-streams scenario: sends N streamed chat completions at once and
// records, per stream, the time from sending the request to the first content byte and, per chunk, the
// delay the hops added: arrival time minus the upstream's send stamp (`t=<µs>.` in the content text, see
// paced-upstream.mjs), both on CLOCK_MONOTONIC. It parses as little as it can, so that it is not the
// bottleneck: it finds the stamps, `event: error` and `[DONE]` in the text, and decodes no JSON.
import { Agent, request } from 'node:http';

const nowMicros = () => Number(process.hrtime.bigint() / 1000n);

/** A stream that sends nothing for this long is counted as failed (queued streams wait for their first byte). */
const IDLE_TIMEOUT_MS = 60_000;

/** Connections are opened 20 every 5 ms, before the clock starts (see openConnections). */
const CONNECT_BATCH = 20;
const CONNECT_INTERVAL_MS = 5;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * One kept-alive connection per stream, opened and answered once (GET readyUrl) before the clock starts,
 * as the pooled clients of the gateway's callers hold them. Opening 2,000 connections inside the measured
 * run overflows the listen queue of a busy Node server (backlog 511 by default, the gateway's included):
 * the time to first byte then counts the kernel's SYN-ACK retransmissions (1 s, then 3 s) and the resets
 * of connections it gave up on, not the hop. A connection that fails here is opened again by its stream.
 */
export async function openConnections({ readyUrl, streams }) {
  const agents = Array.from({ length: streams }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
  const ready = [];
  for (const [i, agent] of agents.entries()) {
    if (i > 0 && i % CONNECT_BATCH === 0) await sleep(CONNECT_INTERVAL_MS);
    ready.push(
      new Promise((resolve) => {
        const outgoing = request(readyUrl, { agent }, (response) => {
          response.resume();
          response.on('end', resolve);
          response.on('error', resolve);
        });
        outgoing.on('error', resolve);
        outgoing.end();
      }),
    );
  }
  await Promise.all(ready);
  return agents;
}

export function closeConnections(agents) {
  for (const agent of agents) agent.destroy();
}

/**
 * Sends one streamed request on each connection, all at once. Returns { streams, completed, chunks,
 * ttfbMs[], delayMs[], errors, errorKinds, wallS, clientCpuPercent }. A stream is an error when its status
 * is not 200, it carries `event: error`, it lacks `data: [DONE]`, it has fewer content chunks than the
 * upstream sent, or its connection fails.
 */
export async function runStreams(agents, { url, body, headers = {}, chunks }) {
  const result = { streams: agents.length, completed: 0, chunks: 0, ttfbMs: [], delayMs: [], errors: 0, errorKinds: {} };
  const requestHeaders = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers };
  const cpuBefore = process.cpuUsage();
  const startedAt = performance.now();
  await Promise.all(agents.map((agent) => openStream({ url, body, headers: requestHeaders, agent, chunks, result })));
  const wallMs = performance.now() - startedAt;
  const cpu = process.cpuUsage(cpuBefore);
  result.wallS = wallMs / 1000;
  // Of one core: near 100 means the load generator, not the server, set the pace.
  result.clientCpuPercent = ((cpu.user + cpu.system) / 1000 / wallMs) * 100;
  return result;
}

function openStream({ url, body, headers, agent, chunks, result }) {
  return new Promise((resolve) => {
    let sentAt;
    let stamps = 0;
    let sawError = false;
    let sawDone = false;
    let pending = '';
    let settled = false;
    const settle = (errorKind) => {
      if (settled) return;
      settled = true;
      result.chunks += stamps;
      if (errorKind) {
        result.errors += 1;
        result.errorKinds[errorKind] = (result.errorKinds[errorKind] ?? 0) + 1;
      } else {
        result.completed += 1;
      }
      resolve();
    };

    const outgoing = request(url, { method: 'POST', agent, headers }, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        return settle(`status ${response.statusCode}`);
      }
      response.setEncoding('latin1'); // the stamps are ASCII; latin1 is the cheapest decoding
      response.on('data', (text) => {
        const arrivedAt = nowMicros();
        // Only whole events are scanned, so that a stamp split across two reads is read once, whole.
        pending += text;
        const end = pending.lastIndexOf('\n\n');
        if (end === -1) return;
        const events = pending.slice(0, end);
        pending = pending.slice(end + 2);
        for (let at = events.indexOf('t='); at !== -1; at = events.indexOf('t=', at + 2)) {
          const stamp = Number(events.slice(at + 2, events.indexOf('.', at)));
          if (stamps === 0) result.ttfbMs.push((arrivedAt - sentAt) / 1000);
          result.delayMs.push((arrivedAt - stamp) / 1000);
          stamps += 1;
        }
        if (events.includes('event: error')) sawError = true;
        if (events.includes('data: [DONE]')) sawDone = true;
      });
      response.on('end', () => {
        if (sawError) return settle('event: error');
        if (!sawDone) return settle('no [DONE]');
        settle(stamps < chunks ? 'fewer chunks than sent' : undefined);
      });
      response.on('error', () => settle('connection lost mid-stream'));
    });
    // Each stream's clock starts when its request has been handed to the kernel: writing 2,000 requests
    // keeps this single-threaded generator busy for a good part of a second, and the last streams would
    // otherwise count that wait as the server's.
    outgoing.on('finish', () => (sentAt = nowMicros()));
    outgoing.setTimeout(IDLE_TIMEOUT_MS, () => outgoing.destroy(new Error(`idle ${IDLE_TIMEOUT_MS / 1000} s`)));
    outgoing.on('error', (error) => settle(`request: ${error.code ?? error.message}`));
    outgoing.end(body);
  });
}
