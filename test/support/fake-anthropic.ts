import { once } from 'node:events';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local server speaking Anthropic's Messages protocol (`POST /v1/messages`), standing behind LiteLLM's
 * `anthropic/...` routes so that LiteLLM's OpenAI ⇄ Anthropic translation runs for real. Every answer is
 * derived from the request, so a test can predict it:
 * - tools offered, tool_choice not `none`, last message a user text → tool_use blocks: the tool forced by
 *   tool_choice, else the first tool, else (text containing `parallel`, parallel use not disabled) the first two.
 *   `explain` in the text puts a text block before them, as Claude often does. Inputs come from the schemas
 *   (`fakeToolInput`), ids from `fakeToolUseId`.
 * - last message carrying tool_result blocks → a text naming each result.
 * - otherwise → `Echo: <last user text>`, plus ` | System: <system>` and ` | Saw N image(s)` when present,
 *   or the schema's example JSON when structured output (`output_format`) is asked for.
 * - `refuse` in the text → stop_reason `refusal` and no content. stop_sequences and max_tokens cut the text.
 * Token counts are whitespace word counts (`countWords`), so usage is exact.
 */

export const FAKE_ANTHROPIC_MESSAGE_ID = 'msg_01FakeAnthropicMessage';
/** A 1×1 transparent PNG, served at /image.png and handy as a data URI. */
export const TINY_PNG_BASE64 =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

export interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
}

export type AnthropicContentBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: unknown };

export interface AnthropicAnswer {
  content: AnthropicContentBlock[];
  stop_reason: 'end_turn' | 'tool_use' | 'max_tokens' | 'stop_sequence' | 'refusal' | string;
  stop_sequence: string | null;
  usage: AnthropicUsage;
}

export interface ScriptedAnthropicResponse {
  /** Answer with this status and body (Anthropic's error envelope by default) instead of a message. */
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Change the derived answer, e.g. a tool_use block without an id, or cache token counts. */
  answer?: (derived: AnthropicAnswer) => AnthropicAnswer;
  /** Streams only: wait this long between events, so a client can see whether they arrive one by one. */
  eventGapMs?: number;
  /** Streams only: after this many content_block_delta events, send an `error` event and end the stream. */
  streamErrorAfterDeltas?: number;
  /** Streams only: after this many content_block_delta events, hold the connection open until the client leaves. */
  stallAfterDeltas?: number;
  /** Streams only: after this many content_block_delta events, destroy the socket. */
  cutAfterDeltas?: number;
}

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: any;
  /** True when the client closed the connection before the answer was complete. */
  closedByClient: boolean;
}

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
};

/** Anthropic's error envelope for a status. */
export function anthropicError(status: number, message = 'scripted failure', type = ERROR_TYPES[status] ?? 'api_error') {
  return { type: 'error', error: { type, message } };
}

export function countWords(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

/** Deterministic, and valid for Anthropic (`^[a-zA-Z0-9_-]+$`). */
export function fakeToolUseId(toolName: string, position: number): string {
  return `toolu_01${position}${toolName.replace(/[^a-zA-Z0-9_-]/g, '')}`;
}

/** An example value for a JSON schema: enum[0], "Paris" for strings, 42, 1.5, true, one-item arrays. */
export function fakeToolInput(schema: any): unknown {
  if (schema?.enum) return schema.enum[0];
  const type = Array.isArray(schema?.type) ? schema.type[0] : schema?.type;
  switch (type) {
    case 'string':
      return 'Paris';
    case 'integer':
      return 42;
    case 'number':
      return 1.5;
    case 'boolean':
      return true;
    case 'null':
      return null;
    case 'array':
      return [fakeToolInput(schema.items)];
    default:
      return Object.fromEntries(
        Object.entries<any>(schema?.properties ?? {}).map(([name, property]) => [name, fakeToolInput(property)]),
      );
  }
}

type Block = { type: string; [key: string]: any };

function blocksOf(content: string | Block[] | undefined): Block[] {
  if (content === undefined) return [];
  return typeof content === 'string' ? [{ type: 'text', text: content }] : content;
}

function textOf(content: string | Block[] | undefined): string {
  return blocksOf(content)
    .filter((block) => block.type === 'text')
    .map((block) => block.text as string)
    .join(' ');
}

/** Words of every text the model reads: system, text blocks, tool results. Tool definitions and images count 0. */
export function countInputTokens(body: any): number {
  let words = countWords(textOf(body.system));
  for (const message of body.messages ?? []) {
    for (const block of blocksOf(message.content)) {
      if (block.type === 'text') words += countWords(block.text);
      if (block.type === 'tool_result') words += countWords(textOf(block.content));
    }
  }
  return words;
}

function outputTokens(content: AnthropicContentBlock[]): number {
  return content.reduce(
    (sum, block) => sum + countWords(block.type === 'text' ? block.text : JSON.stringify(block.input)),
    0,
  );
}

function structuredOutputSchema(body: any): unknown {
  const format = body.output_format ?? body.output_config?.format;
  return format?.type === 'json_schema' ? format.schema : undefined;
}

function toolsToCall(body: any, lastText: string): Array<{ name: string; input_schema: unknown }> {
  const tools: Array<{ name: string; input_schema: unknown }> = body.tools ?? [];
  const choice = body.tool_choice ?? { type: 'auto' };
  if (tools.length === 0 || choice.type === 'none') return [];
  if (choice.type === 'tool') return tools.filter((tool) => tool.name === choice.name);
  const parallel = lastText.includes('parallel') && !choice.disable_parallel_tool_use;
  return tools.slice(0, parallel ? 2 : 1);
}

/** Applies stop_sequences and max_tokens to a text answer, as the model would stop. */
function cutText(text: string, body: any): Pick<AnthropicAnswer, 'stop_reason' | 'stop_sequence'> & { text: string } {
  for (const sequence of body.stop_sequences ?? []) {
    const at = text.indexOf(sequence);
    if (at >= 0) return { text: text.slice(0, at), stop_reason: 'stop_sequence', stop_sequence: sequence };
  }
  const words = text.split(' ');
  if (body.max_tokens !== undefined && countWords(text) > body.max_tokens) {
    return { text: words.slice(0, body.max_tokens).join(' '), stop_reason: 'max_tokens', stop_sequence: null };
  }
  return { text, stop_reason: 'end_turn', stop_sequence: null };
}

/** What the fake model answers to a Messages request. */
export function fakeAnthropicAnswer(body: any): AnthropicAnswer {
  const last = body.messages?.[body.messages.length - 1] ?? { content: '' };
  const lastBlocks = blocksOf(last.content);
  const lastText = textOf(last.content);
  const toolResults = lastBlocks.filter((block) => block.type === 'tool_result');
  const finish = (content: AnthropicContentBlock[], stop: Omit<AnthropicAnswer, 'content' | 'usage'>): AnthropicAnswer => ({
    content,
    ...stop,
    usage: { input_tokens: countInputTokens(body), output_tokens: outputTokens(content) },
  });

  if (lastText.includes('refuse')) return finish([], { stop_reason: 'refusal', stop_sequence: null });

  if (toolResults.length > 0) {
    const text = toolResults.map((result) => `Tool ${result.tool_use_id} said: ${textOf(result.content)}`).join(' | ');
    return finish([{ type: 'text', text }], { stop_reason: 'end_turn', stop_sequence: null });
  }

  const calls = last.role === 'user' ? toolsToCall(body, lastText) : [];
  if (calls.length > 0) {
    const content: AnthropicContentBlock[] = calls.map((tool, position) => ({
      type: 'tool_use',
      id: fakeToolUseId(tool.name, position),
      name: tool.name,
      input: fakeToolInput(tool.input_schema),
    }));
    if (lastText.includes('explain')) content.unshift({ type: 'text', text: `Calling ${calls.map((tool) => tool.name).join(' and ')}.` });
    return finish(content, { stop_reason: 'tool_use', stop_sequence: null });
  }

  const schema = structuredOutputSchema(body);
  if (schema !== undefined) {
    return finish([{ type: 'text', text: JSON.stringify(fakeToolInput(schema)) }], { stop_reason: 'end_turn', stop_sequence: null });
  }

  const parts = [`Echo: ${lastText}`];
  const system = textOf(body.system);
  if (system) parts.push(`System: ${system}`);
  const images = lastBlocks.filter((block) => block.type === 'image').length;
  if (images > 0) parts.push(`Saw ${images} image${images === 1 ? '' : 's'}`);
  const { text, ...stop } = cutText(parts.join(' | '), body);
  return finish(text ? [{ type: 'text', text }] : [], stop);
}

function splitInThree(text: string): string[] {
  const third = Math.ceil(text.length / 3);
  return [text.slice(0, third), text.slice(third, 2 * third), text.slice(2 * third)].filter(Boolean);
}

export class FakeAnthropic {
  readonly received: ReceivedRequest[] = [];
  private readonly scripted: ScriptedAnthropicResponse[] = [];
  private readonly server: Server;

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

  /** The next Messages requests get these responses, in order; after them, the derived answers come back. */
  respondNext(...responses: ScriptedAnthropicResponse[]): void {
    this.scripted.push(...responses);
  }

  reset(): void {
    this.received.length = 0;
    this.scripted.length = 0;
  }

  /** The Messages requests received so far. */
  messages(): ReceivedRequest[] {
    return this.received.filter((request) => request.path === '/v1/messages');
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
    };
    this.received.push(record);
    response.on('close', () => {
      if (!response.writableFinished) record.closedByClient = true;
    });

    if (record.path === '/image.png') {
      response.writeHead(200, { 'content-type': 'image/png' });
      return void response.end(Buffer.from(TINY_PNG_BASE64, 'base64'));
    }
    if (record.method !== 'POST' || record.path !== '/v1/messages') {
      return this.sendJson(response, 404, anthropicError(404, `no route ${record.method} ${record.path}`));
    }
    // Anthropic answers a request without these headers with 401 / 400; so does the fake.
    if (!request.headers['x-api-key']) return this.sendJson(response, 401, anthropicError(401, 'x-api-key header is required'));
    if (!request.headers['anthropic-version']) {
      return this.sendJson(response, 400, anthropicError(400, 'anthropic-version: header is required'));
    }

    const script = this.scripted.shift() ?? {};
    if (script.delayMs) await new Promise((resolve) => setTimeout(resolve, script.delayMs));
    if (script.status && script.status !== 200) {
      return this.sendJson(response, script.status, script.body ?? anthropicError(script.status), script.headers);
    }

    const derived = fakeAnthropicAnswer(record.body);
    const answer = script.answer ? script.answer(derived) : derived;
    if (record.body.stream) return this.stream(record.body, answer, script, response);
    this.sendJson(
      response,
      200,
      { id: FAKE_ANTHROPIC_MESSAGE_ID, type: 'message', role: 'assistant', model: record.body.model, ...answer },
      { 'request-id': 'req_fake', ...script.headers },
    );
  }

  private sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    response.writeHead(status, { 'content-type': 'application/json', ...headers });
    response.end(JSON.stringify(body));
  }

  /** Streams the answer as Anthropic does: text in three deltas, tool input as "" then three partial_json fragments. */
  private async stream(body: any, answer: AnthropicAnswer, script: ScriptedAnthropicResponse, response: ServerResponse) {
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'request-id': 'req_fake', ...script.headers });
    const send = async (type: string, data: object) => {
      response.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
      if (script.eventGapMs) await new Promise((resolve) => setTimeout(resolve, script.eventGapMs));
    };

    await send('message_start', {
      message: {
        id: FAKE_ANTHROPIC_MESSAGE_ID,
        type: 'message',
        role: 'assistant',
        model: body.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { ...answer.usage, output_tokens: 1 },
      },
    });
    await send('ping', {});

    let deltas = 0;
    for (const [index, block] of answer.content.entries()) {
      const start = block.type === 'text' ? { type: 'text', text: '' } : { ...block, input: {} };
      await send('content_block_start', { index, content_block: start });
      const fragments =
        block.type === 'text'
          ? splitInThree(block.text).map((text) => ({ type: 'text_delta', text }))
          : ['', ...splitInThree(JSON.stringify(block.input))].map((partial_json) => ({ type: 'input_json_delta', partial_json }));
      for (const delta of fragments) {
        if (deltas === script.streamErrorAfterDeltas) {
          await send('error', anthropicError(529, 'Overloaded'));
          return void response.end();
        }
        if (deltas === script.stallAfterDeltas) return; // held open until the client goes away
        if (deltas === script.cutAfterDeltas) return void response.destroy();
        await send('content_block_delta', { index, delta });
        deltas += 1;
      }
      await send('content_block_stop', { index });
    }
    await send('message_delta', {
      delta: { stop_reason: answer.stop_reason, stop_sequence: answer.stop_sequence },
      usage: { output_tokens: answer.usage.output_tokens },
    });
    await send('message_stop', {});
    response.end();
  }
}
