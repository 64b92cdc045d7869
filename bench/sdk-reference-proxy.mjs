// The ceiling the design allows: a bare node:http hop that calls the upstream through the openai SDK on
// the gateway's own transport (dist/src/llm/upstream-fetch.js), as the gateway must, with no framework,
// validation, auth, logging or metrics. Usage: node sdk-reference-proxy.mjs <upstream>.
import { createServer } from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { default: OpenAI } = require('openai');
const { createUpstreamFetch } = require('../dist/src/llm/upstream-fetch.js');

const client = new OpenAI({ baseURL: `${process.argv[2]}/v1`, apiKey: 'sk-bench', maxRetries: 0, fetch: createUpstreamFetch() });

function call(path, body) {
  if (path === '/v1/chat/completions') return client.chat.completions.create(body);
  if (path === '/v1/embeddings') return client.embeddings.create(body);
  return Promise.reject(Object.assign(new Error('not found'), { status: 404 }));
}

const server = createServer((request, response) => {
  let body = '';
  request.setEncoding('utf8');
  request.on('data', (part) => (body += part));
  request.on('end', () => {
    call(request.url, JSON.parse(body)).then(
      (result) => {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify(result));
      },
      (error) => response.writeHead(error.status ?? 502).end(),
    );
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
