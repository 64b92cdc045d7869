import { Logger } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { once } from 'node:events';
import { describeError, INTERNAL_ERROR } from '../common/all-exceptions.filter';
import { errorResponse } from '../common/error-response';
import { ChatStreamEvent } from './llm.types';

const logger = new Logger('ChatEventStream');

/** An AbortController that fires when the caller goes away before the answer is complete. */
export function abortOnClientDisconnect(reply: FastifyReply): AbortController {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller;
}

function formatEvent(event: ChatStreamEvent): string {
  if (event.type === 'delta') return `data: ${JSON.stringify({ content: event.content })}\n\n`;
  const { model, usage, fallbackUsed } = event;
  return `data: ${JSON.stringify({ model, usage, fallbackUsed })}\n\ndata: [DONE]\n\n`;
}

export interface ChatEventStreamOptions {
  reply: FastifyReply;
  events: AsyncGenerator<ChatStreamEvent>;
  /** Aborts the upstream call: fired by a disconnecting caller, or by shutdown. */
  abort: AbortController;
  headers: Record<string, string>;
  /** Registers the stream with the shutdown sequence; returns the unregister function. */
  trackStream: (end: () => void) => () => void;
}

/**
 * Sends a chat stream as Server-Sent Events. The first event is awaited before any byte is written, so an
 * upstream refusal still becomes an ordinary HTTP error; a failure after that ends the stream with an
 * `event: error` carrying the usual error body, never a silent or truncated success.
 */
export async function sendChatEventStream({ reply, events, abort, headers, trackStream }: ChatEventStreamOptions): Promise<void> {
  const first = await events.next();

  reply.hijack();
  const response = reply.raw;
  const allHeaders: Record<string, unknown> = {
    ...reply.getHeaders(),
    ...headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  };
  // setHeader, not writeHead's argument: the request log reads x-llm-model back from the response.
  for (const [name, value] of Object.entries(allHeaders)) {
    if (value !== undefined) response.setHeader(name, value as string);
  }
  response.writeHead(200);

  let endedByShutdown = false;
  const untrack = trackStream(() => {
    endedByShutdown = true;
    abort.abort();
  });
  const write = async (text: string) => {
    if (!response.write(text)) await once(response, 'drain', { signal: abort.signal });
  };

  try {
    if (!first.done) await write(formatEvent(first.value));
    for await (const event of events) await write(formatEvent(event));
  } catch (error) {
    if (abort.signal.aborted && !endedByShutdown) return; // the caller left: nobody to tell
    const described = endedByShutdown
      ? { statusCode: 503, code: 'SHUTTING_DOWN', message: 'The gateway is shutting down; retry the call' }
      : describeError(error);
    if (described === INTERNAL_ERROR) logger.error('Chat stream failed', error instanceof Error ? error.stack : String(error));
    const body = errorResponse(described.statusCode, described.code, described.message, String(reply.request.id));
    response.write(`event: error\ndata: ${JSON.stringify(body)}\n\n`);
  } finally {
    untrack();
    response.end();
  }
}
