import { once } from 'node:events';
import { createServer, Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { postJson, readJson, RunningGateway, startGateway } from './support/gateway';

/**
 * The keep-alive race with LiteLLM. LiteLLM serves through uvicorn, which closes a connection idle for 5 s
 * and sends no Keep-Alive hint. A client that keeps idle sockets longer sends some calls on a socket the
 * server is closing at that very moment, and they fail with a reset. The gateway keeps idle sockets for
 * less (LITELLM_KEEP_ALIVE_TIMEOUT_MS, 4 s), so it opens a new connection instead.
 */
const SERVER_IDLE_CLOSE_MS = 5_000;

/** An OpenAI-shaped chat server that closes idle connections as uvicorn does: after 5 s, without a hint. */
function uvicornLikeServer(): { server: Server; connections: () => number } {
  let connections = 0;
  const server = createServer((request, response) => {
    const socket = request.socket as Socket & { idleClose?: NodeJS.Timeout };
    clearTimeout(socket.idleClose);
    request.resume();
    request.on('end', () => {
      response.writeHead(200, { 'content-type': 'application/json' });
      if (request.url?.endsWith('/models')) return void response.end(JSON.stringify({ object: 'list', data: [{ id: 'gpt-4o', object: 'model' }] }));
      response.end(
        JSON.stringify({
          id: 'c',
          model: 'gpt-4o',
          choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        }),
      );
    });
    response.on('finish', () => {
      socket.idleClose = setTimeout(() => socket.destroy(), SERVER_IDLE_CLOSE_MS);
    });
  });
  // Node's own keep-alive timer would also send a Keep-Alive hint, which uvicorn does not.
  server.keepAliveTimeout = 0;
  server.on('connection', (socket: Socket & { idleClose?: NodeJS.Timeout }) => {
    connections += 1;
    // A socket closed by either side needs no idle close: its timer would keep the process alive for up to 5 s.
    socket.once('close', () => clearTimeout(socket.idleClose));
  });
  return { server, connections: () => connections };
}

describe('connections to LiteLLM: no keep-alive race', () => {
  const { server, connections } = uvicornLikeServer();
  let gateway: RunningGateway;

  beforeAll(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    gateway = await startGateway({
      NODE_ENV: 'test',
      LITELLM_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      LITELLM_API_KEY: 'sk-test',
      // The model list is read once in the background, after the first call, and not again during the test.
      MODELS_CACHE_TTL_MS: '600000',
    });
  });

  afterAll(async () => {
    await gateway?.close();
    server.closeAllConnections();
    server.close();
  });

  it('calls spaced 4.5 to 6 s apart, around the server closing idle sockets at 5 s, all succeed; none reuses a socket idle past 4 s', async () => {
    const chat = async () => {
      const response = await postJson(`${gateway.url}/v1/chat`, { messages: [{ role: 'user', content: 'hi' }] });
      return { status: response.status, code: response.status === 200 ? undefined : (await readJson(response)).code };
    };
    const results = [await chat()];
    await new Promise((resolve) => setTimeout(resolve, 300));
    const before = connections();
    // 4.5 s: the server would still take the socket, but the gateway has dropped it (a new connection proves it);
    // 5.0 s and just after: the server is closing the socket right then, the race itself.
    for (const gapMs of [4_500, 5_000, 5_005, 5_010, 5_500, 6_000]) {
      await new Promise((resolve) => setTimeout(resolve, gapMs));
      results.push(await chat());
    }

    expect(results.filter((result) => result.status !== 200)).toEqual([]);
    expect(connections() - before).toBe(6); // a fresh connection for every call after a pause
  }, 60_000);
});
