import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import OpenAI, { APIError, APIUserAbortError } from 'openai';
import { Agent } from 'undici';
import { createUpstreamFetch, plainHeaders, UpstreamHeaders } from './upstream-fetch';

type Handler = (request: IncomingMessage, body: string, response: ServerResponse) => void;

describe('createUpstreamFetch (the transport under the openai SDK)', () => {
  let server: Server;
  let handler: Handler;
  let agent: Agent;
  let client: OpenAI;

  beforeAll(async () => {
    server = createServer((request, response) => {
      let body = '';
      request.setEncoding('utf8');
      request.on('data', (part: string) => (body += part));
      request.on('end', () => handler(request, body, response));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    agent = new Agent();
    client = new OpenAI({
      baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
      apiKey: 'sk-transport-test',
      maxRetries: 0,
      fetch: createUpstreamFetch(agent),
    });
  });

  afterAll(async () => {
    await agent.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('sends the method, the headers and the body, and hands back the parsed JSON answer', async () => {
    let received: { method?: string; url?: string; authorization?: string; contentType?: string; body?: unknown } = {};
    handler = (request, body, response) => {
      received = {
        method: request.method,
        url: request.url,
        authorization: request.headers.authorization,
        contentType: request.headers['content-type'],
        body: JSON.parse(body),
      };
      response.writeHead(200, { 'content-type': 'application/json', 'x-request-id': 'req-42' });
      response.end(JSON.stringify({ id: 'c1', model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' } }] }));
    };

    const completion = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] });

    expect(received).toEqual({
      method: 'POST',
      url: '/v1/chat/completions',
      authorization: 'Bearer sk-transport-test',
      contentType: 'application/json',
      body: { model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] },
    });
    expect(completion.choices[0].message.content).toBe('hi');
    expect(completion._request_id).toBe('req-42');
  });

  it('turns an error status into the SDK error, with its body and its headers', async () => {
    handler = (_request, _body, response) => {
      response.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
      response.end(JSON.stringify({ error: { message: 'slow down', type: 'rate_limit' } }));
    };

    const failure = await client.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] })
      .catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(APIError);
    expect((failure as APIError).status).toBe(429);
    expect((failure as APIError).message).toContain('slow down');
    expect((failure as APIError).headers?.get('Retry-After')).toBe('7');
  });

  it('passes an event stream on as it arrives', async () => {
    let finish: () => void = () => undefined;
    handler = (_request, _body, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (content: string) =>
        `data: ${JSON.stringify({ id: 'c1', model: 'gpt-4o', choices: [{ index: 0, delta: { content } }] })}\n\n`;
      response.write(chunk('first '));
      // The rest only comes once the first delta has reached the caller.
      finish = () => response.end(chunk('second') + 'data: [DONE]\n\n');
    };

    const stream = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true });
    const contents: string[] = [];
    for await (const chunk of stream) {
      contents.push(chunk.choices[0]?.delta?.content ?? '');
      if (contents.length === 1) finish();
    }

    expect(contents).toEqual(['first ', 'second']);
  });

  it('stops the upstream call when the caller aborts', async () => {
    let closed!: Promise<void>;
    handler = (request) => {
      closed = new Promise((resolve) => request.socket.once('close', () => resolve()));
    };
    const abort = new AbortController();

    const call = client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }, { signal: abort.signal });
    await new Promise((resolve) => setTimeout(resolve, 50));
    abort.abort();

    await expect(call).rejects.toBeInstanceOf(APIUserAbortError);
    await closed;
  });
});

describe('UpstreamHeaders', () => {
  const headers = new UpstreamHeaders({ 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'], 'x-b': 'second' });

  it('reads names in any case, joins repeated headers and says null for missing ones', () => {
    expect(headers.get('Content-Type')).toBe('application/json');
    expect(headers.get('set-cookie')).toBe('a=1, b=2');
    expect(headers.get('retry-after')).toBeNull();
    expect(headers.has('X-B')).toBe(true);
    expect(headers.has('x-a')).toBe(false);
  });

  it('iterates like fetch Headers, sorted by name', () => {
    expect([...headers]).toEqual([
      ['content-type', 'application/json'],
      ['set-cookie', 'a=1, b=2'],
      ['x-b', 'second'],
    ]);
  });

  it('keeps the headers out of its own properties, where a log formatter would find them unredacted', () => {
    expect(Object.entries(headers)).toEqual([]);
    expect(JSON.stringify(headers)).toBe('{}');
  });
});

describe('plainHeaders', () => {
  it('turns web Headers, pairs and mixed-case objects into one plain object with lower-case names', () => {
    const expected = { authorization: 'Bearer sk-x', 'x-stainless-lang': 'js' };
    expect(plainHeaders(new Headers({ Authorization: 'Bearer sk-x', 'X-Stainless-Lang': 'js' }))).toEqual(expected);
    expect(plainHeaders([['Authorization', 'Bearer sk-x'], ['x-stainless-lang', 'js']])).toEqual(expected);
    expect(plainHeaders({ Authorization: 'Bearer sk-x', 'x-stainless-lang': 'js' })).toEqual(expected);
    expect(plainHeaders(undefined)).toEqual({});
  });

  it('takes a plain object that is already in lower case as it is', () => {
    const given = { authorization: 'Bearer sk-x' };
    expect(plainHeaders(given)).toBe(given);
  });
});
