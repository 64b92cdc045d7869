// The ceiling the design allows: a bare node:http hop that calls the upstream through the openai SDK on
// the gateway's own transport (dist/src/litellm/upstream-fetch.js), as the gateway must, with no framework,
// validation, auth, logging or metrics. A streamed chat (stream: true) is re-emitted delta by delta in the
// gateway's format (`data: {"content":...}`, then the model and usage, then [DONE]).
// Usage: node sdk-reference-proxy.mjs <upstream> [--uncapped-pool]
//   --uncapped-pool: no cap on upstream connections instead of the transport's default pool (for the
//   concurrent-streams scenario: a stream holds its connection for its whole length, so a capped pool
//   would make the row measure the queue for connections rather than the hop).
import { createServer } from 'node:http';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { Agent } from 'undici';

const require = createRequire(import.meta.url);
const { default: OpenAI } = require('openai');
const { createUpstreamFetch } = require('../dist/src/litellm/upstream-fetch.js');

const transport = process.argv.includes('--uncapped-pool') ? createUpstreamFetch(new Agent({ keepAliveTimeout: 30_000 })) : createUpstreamFetch();
const client = new OpenAI({ baseURL: `${process.argv[2]}/v1`, apiKey: 'sk-bench', maxRetries: 0, fetch: transport });

function call(path, body) {
  if (path === '/v1/chat/completions') return client.chat.completions.create(body);
  if (path === '/v1/embeddings') return client.embeddings.create(body);
  return Promise.reject(Object.assign(new Error('not found'), { status: 404 }));
}

async function relayStream(stream, response) {
  response.writeHead(200, { 'content-type': 'text/event-stream' });
  let model;
  let usage;
  try {
    for await (const chunk of stream) {
      if (chunk.model) model = chunk.model;
      if (chunk.usage) usage = chunk.usage;
      const content = chunk.choices?.[0]?.delta?.content;
      // Backpressure as the gateway handles it: wait for the caller to drain before reading on.
      if (content && !response.write(`data: ${JSON.stringify({ content })}\n\n`)) await once(response, 'drain');
    }
    response.end(`data: ${JSON.stringify({ model, usage })}\n\ndata: [DONE]\n\n`);
  } catch {
    response.end('event: error\ndata: {}\n\n');
  }
}

const server = createServer((request, response) => {
  if (request.url === '/health') return response.writeHead(200).end();
  let body = '';
  request.setEncoding('utf8');
  request.on('data', (part) => (body += part));
  request.on('end', () => {
    const payload = JSON.parse(body);
    call(request.url, payload).then(
      (result) => {
        if (payload.stream) return relayStream(result, response);
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify(result));
      },
      (error) => response.writeHead(error.status ?? 502).end(),
    );
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
