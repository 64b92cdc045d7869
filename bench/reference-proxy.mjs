// The ceiling to approach: a bare node:http hop with a keep-alive agent that parses each JSON request
// and response and serializes them again, with no framework. Usage: node reference-proxy.mjs <upstream>.
import { Agent, createServer, request as forward } from 'node:http';

const upstream = new URL(process.argv[2]);
const agent = new Agent({ keepAlive: true, maxSockets: 256 });

const server = createServer((request, response) => {
  let body = '';
  request.setEncoding('utf8');
  request.on('data', (part) => (body += part));
  request.on('end', () => {
    const payload = JSON.stringify(JSON.parse(body));
    const outgoing = forward(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: request.method,
        path: request.url,
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (answer) => {
        let text = '';
        answer.setEncoding('utf8');
        answer.on('data', (part) => (text += part));
        answer.on('end', () => {
          const streamed = (answer.headers['content-type'] ?? '').startsWith('text/event-stream');
          const out = streamed ? text : JSON.stringify(JSON.parse(text));
          response.writeHead(answer.statusCode ?? 502, { 'content-type': answer.headers['content-type'] ?? 'application/json' });
          response.end(out);
        });
      },
    );
    outgoing.on('error', () => response.writeHead(502).end());
    outgoing.end(payload);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
