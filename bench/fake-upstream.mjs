// A zero-latency OpenAI-compatible upstream for the benchmark: every answer is prepared once at start,
// so the figures measure the hops in front of it, not this server. Prints its port on stdout.
import { createServer } from 'node:http';

const chatBody = JSON.stringify({
  id: 'chatcmpl-bench',
  object: 'chat.completion',
  created: 1_700_000_000,
  model: 'gpt-4o',
  choices: [{ index: 0, message: { role: 'assistant', content: 'A short, fixed answer from the benchmark upstream.' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 250, completion_tokens: 10, total_tokens: 260 },
});

const vector = Array.from({ length: 1536 }, (_, i) => Math.round(Math.sin(i) * 1e6) / 1e6);
const embeddingsBody = JSON.stringify({
  object: 'list',
  model: 'text-embedding-3-small',
  data: [{ object: 'embedding', index: 0, embedding: vector }],
  usage: { prompt_tokens: 5, total_tokens: 5 },
});

const chunk = (delta, finish = null) =>
  `data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1_700_000_000, model: 'gpt-4o', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
const streamBody =
  chunk({ role: 'assistant', content: '' }) +
  ['A short, ', 'fixed answer ', 'from the benchmark upstream.'].map((content) => chunk({ content })).join('') +
  chunk({}, 'stop') +
  `data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1_700_000_000, model: 'gpt-4o', choices: [], usage: { prompt_tokens: 250, completion_tokens: 10, total_tokens: 260 } })}\n\n` +
  'data: [DONE]\n\n';

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
      if (body.includes('"stream":true')) {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        return response.end(streamBody);
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      return response.end(chatBody);
    }
    if (url.endsWith('/embeddings')) {
      response.writeHead(200, { 'content-type': 'application/json' });
      return response.end(embeddingsBody);
    }
    if (url.endsWith('/models')) {
      response.writeHead(200, { 'content-type': 'application/json' });
      return response.end(modelsBody);
    }
    if (url === '/health/liveliness') {
      response.writeHead(200, { 'content-type': 'application/json' });
      return response.end('"I\'m alive!"');
    }
    response.writeHead(404).end();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
