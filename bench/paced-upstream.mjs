// The upstream of the concurrent-streams scenario: OpenAI-compatible, and every streamed chat completion
// sends <chunks> content chunks <pace ms> apart, as a model generating tokens does, then the finish chunk,
// the usage chunk (when stream_options.include_usage asks for it) and [DONE].
// Each content chunk carries its send time in its content text, `t=<µs>. `, on CLOCK_MONOTONIC
// (process.hrtime.bigint() on Linux), which every process on this machine shares: the content text is the
// one field that survives every hop (the gateway re-encodes chunks as {"content":...}, LiteLLM passes
// content through), and the load generator subtracts the stamp from the arrival time.
// Usage: node paced-upstream.mjs <chunks> <pace ms>. Prints its port on stdout.
import { createServer } from 'node:http';

const CHUNKS = Number(process.argv[2] ?? 40);
const PACE_MS = Number(process.argv[3] ?? 50);

// Built by hand around the stamp rather than with JSON.stringify: tens of thousands of chunks a second
// go out at 2,000 streams, and this process shares the machine with the hops it measures.
const chunkPrefix = (model) => `data: {"id":"chatcmpl-paced","object":"chat.completion.chunk","created":1700000000,"model":${JSON.stringify(model)},`;
const contentChunk = (prefix, first) =>
  `${prefix}"choices":[{"index":0,"delta":{${first ? '"role":"assistant",' : ''}"content":"t=${process.hrtime.bigint() / 1000n}. "},"finish_reason":null}]}\n\n`;
const finishChunk = (prefix) => `${prefix}"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n`;
const usageChunk = (prefix) =>
  `${prefix}"choices":[],"usage":{"prompt_tokens":250,"completion_tokens":${CHUNKS},"total_tokens":${250 + CHUNKS}}}\n\n`;

function streamPaced(response, model, includeUsage) {
  const prefix = chunkPrefix(model);
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const startedAt = performance.now();
  let sent = 0;
  let timer;
  const sendNext = () => {
    // No backpressure handling: a chunk is ~200 bytes every 50 ms, and a reader that falls behind is what
    // the delays measure.
    response.write(contentChunk(prefix, sent === 0));
    sent += 1;
    if (sent < CHUNKS) {
      // Due times are fixed from the start, so that one late tick does not push back every later chunk.
      timer = setTimeout(sendNext, Math.max(0, startedAt + sent * PACE_MS - performance.now()));
      return;
    }
    response.end(`${finishChunk(prefix)}${includeUsage ? usageChunk(prefix) : ''}data: [DONE]\n\n`);
  };
  response.on('close', () => clearTimeout(timer));
  sendNext();
}

const modelsBody = JSON.stringify({
  object: 'list',
  data: ['claude-3-5-sonnet', 'gpt-4o', 'text-embedding-3-small'].map((id) => ({ id, object: 'model', created: 0, owned_by: 'bench' })),
});

const server = createServer((request, response) => {
  let body = '';
  request.setEncoding('utf8');
  request.on('data', (part) => (body += part));
  request.on('end', () => {
    const url = request.url ?? '';
    if (url.endsWith('/chat/completions')) {
      const payload = JSON.parse(body);
      if (payload.stream) return streamPaced(response, payload.model ?? 'gpt-4o', Boolean(payload.stream_options?.include_usage));
      response.writeHead(400, { 'content-type': 'application/json' });
      return response.end(JSON.stringify({ error: { message: 'the paced upstream only streams', type: 'invalid_request_error' } }));
    }
    if (url === '/health') return response.writeHead(200).end();
    if (url.endsWith('/models')) {
      response.writeHead(200, { 'content-type': 'application/json' });
      return response.end(modelsBody);
    }
    response.writeHead(404).end();
  });
});
server.keepAliveTimeout = 60_000;
// A deep listen queue: this stands in for a provider (LiteLLM's uvicorn listens with 2,048), and a hop that
// opens hundreds of upstream connections at once must find the queue of its hop, not this one, the limit.
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => console.log(server.address().port));
