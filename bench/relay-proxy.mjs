// The floor for a hop that carries streams: bare node:http in front, undici's request API behind, the
// request body and the answer's bytes piped through as they come, nothing parsed. A hop that must read the
// chunks (ours must, to count usage and fall back) can only cost more. Usage: node relay-proxy.mjs <upstream>.
import { createServer } from 'node:http';
import { pipeline } from 'node:stream';
import { Agent, request } from 'undici';

const upstream = process.argv[2];
// No cap on connections: a stream holds its upstream connection for its whole length, so a capped pool
// would queue the streams beyond the cap and the row would measure that queue, not the hop.
const agent = new Agent({ keepAliveTimeout: 30_000 });

const server = createServer((incoming, response) => {
  if (incoming.url === '/health') return response.writeHead(200).end();
  const headers = { 'content-type': incoming.headers['content-type'] ?? 'application/json' };
  if (incoming.headers['content-length']) headers['content-length'] = incoming.headers['content-length'];
  request(`${upstream}${incoming.url}`, { method: incoming.method, headers, body: incoming, dispatcher: agent }).then(
    ({ statusCode, headers: answerHeaders, body }) => {
      response.writeHead(statusCode, { 'content-type': answerHeaders['content-type'] ?? 'application/octet-stream' });
      // A failure half-way destroys the response: the caller sees a stream without [DONE].
      pipeline(body, response, () => undefined);
    },
    () => response.writeHead(502).end(),
  );
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
