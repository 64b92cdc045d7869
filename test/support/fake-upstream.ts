import { once } from 'node:events';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { fakeToolInput } from './fake-anthropic';

/**
 * A local OpenAI-compatible server standing in for the providers (behind LiteLLM) or for LiteLLM itself
 * (in the plain e2e suite). It answers deterministically, records every request, and can be scripted to
 * fail, stall or break a stream.
 */

export const FAKE_EMBEDDING_DIMENSIONS = 1536;
export const FAKE_MODELS = ['claude-3-5-sonnet', 'gpt-4o', 'text-embedding-3-small'];

export interface ScriptedResponse {
  /**
   * Only for a request whose path ends with this. Without it, a script is for the next model call (chat or
   * embeddings), never for the model list, which the gateway also reads in the background.
   */
  path?: string;
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Streams only: send this many content chunks, then an in-stream `data: {"error":...}` event. */
  streamErrorAfterChunks?: number;
  /** Streams only: send this many content chunks, then hold the connection open until the client leaves. */
  stallAfterChunks?: number;
  /** Answers the request itself: for answers no well-behaved upstream gives. */
  handler?: (request: ReceivedRequest, response: ServerResponse) => void;
}

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: any;
  /** True when the client closed the connection before the answer was complete. */
  closedByClient: boolean;
  /** True once the answer's connection is closed, whoever closed it. */
  connectionClosed: boolean;
}

type Part = { type: string; text?: string };

/** A message's text: a string, or its text parts joined with spaces. */
export function textOf(content: string | Part[] | null | undefined): string {
  if (content === null || content === undefined) return '';
  return typeof content === 'string' ? content : content.filter((part) => part.type === 'text').map((part) => part.text).join(' ');
}

/** The reply the fake gives to a chat: derived from the last message, so a test can predict it. */
export function fakeChatReply(messages: Array<{ content: string | Part[] | null }>): string {
  const last = messages[messages.length - 1]?.content;
  const images = Array.isArray(last) ? last.filter((part) => part.type === 'image_url').length : 0;
  return `Echo: ${textOf(last)}${images > 0 ? ` | Saw ${images} image${images === 1 ? '' : 's'}` : ''}`;
}

/** A call's id, deterministic. */
export function fakeToolCallId(name: string, position: number): string {
  return `call_${position}_${name}`;
}

/**
 * The tool calls the fake makes: with tools offered, tool_choice not "none" and a user message last, the tool
 * tool_choice names, else the first one, or the first two when the text says "parallel" (and parallel calls are
 * allowed). Arguments follow each tool's schema (fakeToolInput).
 */
export function fakeToolCalls(body: any): Array<{ id: string; type: 'function'; function: { name: string; arguments: string } }> {
  const tools: any[] = body.tools ?? [];
  const last = body.messages[body.messages.length - 1];
  if (tools.length === 0 || body.tool_choice === 'none' || last?.role !== 'user') return [];
  const named = typeof body.tool_choice === 'object' ? tools.filter((tool) => tool.function.name === body.tool_choice.function.name) : [];
  const parallel = textOf(last.content).includes('parallel') && body.parallel_tool_calls !== false;
  const chosen = named.length > 0 ? named : tools.slice(0, parallel ? 2 : 1);
  return chosen.map((tool, position) => ({
    id: fakeToolCallId(tool.function.name, position),
    type: 'function',
    function: { name: tool.function.name, arguments: JSON.stringify(fakeToolInput(tool.function.parameters)) },
  }));
}

/** After tool results: a text naming each, in order. */
function afterToolResults(messages: any[]): string | undefined {
  const results: string[] = [];
  for (let index = messages.length - 1; index >= 0 && messages[index].role === 'tool'; index -= 1) results.unshift(textOf(messages[index].content));
  return results.length > 0 ? `Tool said: ${results.join('; ')}` : undefined;
}

/** A deterministic unit-scale vector per text, with values that survive a JSON round trip exactly. */
export function fakeEmbedding(text: string, dimensions = FAKE_EMBEDDING_DIMENSIONS): number[] {
  let seed = 0;
  for (const char of text) seed = (seed * 31 + char.charCodeAt(0)) % 1_000_003;
  return Array.from({ length: dimensions }, (_, i) => Math.round(Math.sin(seed + i * 0.7) * 1e6) / 1e6);
}

function countTokens(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

/** Words of every text the model reads. */
function countPromptTokens(messages: Array<{ content: string | Part[] | null }>): number {
  return messages.reduce((sum, message) => sum + countTokens(textOf(message.content)), 0);
}

function splitInThree(text: string): string[] {
  const third = Math.ceil(text.length / 3);
  return [text.slice(0, third), text.slice(third, 2 * third), text.slice(2 * third)].filter(Boolean);
}

export class FakeUpstream {
  readonly received: ReceivedRequest[] = [];
  /** Model calls being answered right now, and the most there have been at once since the last reset(). */
  inFlight = 0;
  maxInFlight = 0;
  /** When set, every chat answer reports this usage instead of counting words. */
  usage: { prompt_tokens: number; completion_tokens: number } | undefined;
  private readonly scripted: ScriptedResponse[] = [];
  private readonly server: Server;
  /** The requests each kept-alive connection carried: its one close listener marks them all. */
  private readonly requestsOn = new WeakMap<Socket, ReceivedRequest[]>();

  constructor() {
    this.server = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        response.destroy(error instanceof Error ? error : new Error(String(error)));
      });
    });
  }

  async start(port = 0): Promise<this> {
    this.server.listen(port, '127.0.0.1');
    await once(this.server, 'listening');
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The next requests get these responses, in order; after them, the default answers come back. */
  respondNext(...responses: ScriptedResponse[]): void {
    this.scripted.push(...responses);
  }

  reset(): void {
    this.received.length = 0;
    this.scripted.length = 0;
    this.maxInFlight = this.inFlight;
    this.usage = undefined;
  }

  requestsTo(pathSuffix: string): ReceivedRequest[] {
    return this.received.filter((request) => request.path.endsWith(pathSuffix));
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const record: ReceivedRequest = {
      method: request.method ?? 'GET',
      path: (request.url ?? '/').split('?')[0],
      headers: request.headers,
      body: raw ? JSON.parse(raw) : undefined,
      closedByClient: false,
      connectionClosed: false,
    };
    this.received.push(record);
    const modelCall = !record.path.endsWith('/models');
    if (modelCall) {
      this.inFlight += 1;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      response.once('close', () => (this.inFlight -= 1));
    }
    // 'finish' means the whole answer reached the operating system; a close before it is the client leaving.
    let finished = false;
    response.once('finish', () => (finished = true));
    response.on('close', () => {
      if (!finished) record.closedByClient = true;
    });
    let onSocket = this.requestsOn.get(request.socket);
    if (!onSocket) {
      const records: ReceivedRequest[] = (onSocket = []);
      this.requestsOn.set(request.socket, records);
      request.socket.once('close', () => records.forEach((each) => (each.connectionClosed = true)));
    }
    onSocket.push(record);

    const script = this.nextScriptFor(record.path);
    if (script.delayMs) await new Promise((resolve) => setTimeout(resolve, script.delayMs));
    if (script.handler) return script.handler(record, response);
    if (script.status && script.status !== 200) {
      return this.sendJson(response, script.status, script.body ?? { error: { message: 'scripted failure' } }, script.headers);
    }

    if (record.path === '/health/liveliness') return this.sendJson(response, 200, "I'm alive!");
    if (record.path.endsWith('/chat/completions')) return this.chat(record.body, script, response);
    if (record.path.endsWith('/embeddings')) return this.embeddings(record.body, response);
    if (record.path.endsWith('/models')) {
      return this.sendJson(response, 200, {
        object: 'list',
        data: FAKE_MODELS.map((id) => ({ id, object: 'model', created: 0, owned_by: 'fake' })),
      });
    }
    this.sendJson(response, 404, { error: { message: `no route ${record.path}` } });
  }

  private nextScriptFor(path: string): ScriptedResponse {
    const index = this.scripted.findIndex((script) => (script.path ? path.endsWith(script.path) : !path.endsWith('/models')));
    return index === -1 ? {} : this.scripted.splice(index, 1)[0];
  }

  private sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    response.writeHead(status, { 'content-type': 'application/json', ...headers });
    response.end(JSON.stringify(body));
  }

  private async chat(body: any, script: ScriptedResponse, response: ServerResponse): Promise<void> {
    const toolCalls = fakeToolCalls(body);
    const format = body.response_format;
    const content =
      toolCalls.length > 0
        ? null
        : format?.type === 'json_schema'
          ? JSON.stringify(fakeToolInput(format.json_schema.schema))
          : format?.type === 'json_object'
            ? JSON.stringify({ answer: fakeChatReply(body.messages) })
            : (afterToolResults(body.messages) ?? fakeChatReply(body.messages));
    const completionTokens = countTokens(content ?? '') + toolCalls.reduce((sum, call) => sum + countTokens(call.function.arguments), 0);
    const usage = this.usage ?? { prompt_tokens: countPromptTokens(body.messages), completion_tokens: completionTokens };
    const fullUsage = { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens };
    const base = { id: 'chatcmpl-fake', created: 1_700_000_000, model: body.model };
    const finishReason = toolCalls.length > 0 ? 'tool_calls' : 'stop';

    if (!body.stream) {
      return this.sendJson(response, 200, {
        ...base,
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content, ...(toolCalls.length > 0 && { tool_calls: toolCalls }) }, finish_reason: finishReason }],
        usage: fullUsage,
      });
    }

    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (data: unknown) => response.write(`data: ${JSON.stringify(data)}\n\n`);
    const chunk = (delta: object, finish: string | null = null) =>
      send({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] });

    chunk({ role: 'assistant', content: '' });
    const parts = splitInThree(content ?? '');
    for (const [index, part] of parts.entries()) {
      if (index === script.streamErrorAfterChunks) {
        send({ error: { message: 'scripted stream failure', type: 'internal_server_error', code: '500' } });
        return void response.end();
      }
      if (index === script.stallAfterChunks) return; // held open until the client goes away
      chunk({ content: part });
    }
    // Each call: its id and name first with no arguments, then the arguments in three pieces, as OpenAI streams them.
    for (const [index, call] of toolCalls.entries()) {
      chunk({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] });
      for (const piece of splitInThree(call.function.arguments)) chunk({ tool_calls: [{ index, function: { arguments: piece } }] });
    }
    chunk({}, finishReason);
    if (body.stream_options?.include_usage) {
      send({ ...base, object: 'chat.completion.chunk', choices: [], usage: fullUsage });
    }
    response.end('data: [DONE]\n\n');
  }

  private embeddings(body: any, response: ServerResponse): void {
    const inputs: string[] = Array.isArray(body.input) ? body.input : [body.input];
    const data = inputs.map((text, index) => {
      const vector = fakeEmbedding(text, body.dimensions ?? FAKE_EMBEDDING_DIMENSIONS);
      const embedding =
        body.encoding_format === 'base64' ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector;
      return { object: 'embedding', index, embedding };
    });
    const tokens = inputs.reduce((sum, text) => sum + countTokens(text), 0);
    this.sendJson(response, 200, {
      object: 'list',
      model: body.model,
      data,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    });
  }
}
