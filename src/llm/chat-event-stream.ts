import { Logger } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { once } from 'node:events';
import type { OutgoingHttpHeaders } from 'node:http';
import { describeError } from '../common/all-exceptions.filter';
import { errorResponse } from '../common/error-response';
import { LlmErrorCode } from './llm.errors';
import { ChatStreamEvent } from './llm.types';

const logger = new Logger('ChatEventStream');

/** An AbortSignal that fires when the caller goes away before the answer is complete. */
export function abortOnClientDisconnect(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

function formatEvent(event: ChatStreamEvent): string {
  if (event.type === 'delta') return `data: ${JSON.stringify({ content: event.content })}\n\n`;
  const { model, usage, fallbackUsed } = event;
  return `data: ${JSON.stringify({ model, usage, fallbackUsed })}\n\ndata: [DONE]\n\n`;
}

/**
 * Sends a chat stream as Server-Sent Events. The first event is awaited before any byte is written, so an
 * upstream refusal still becomes an ordinary HTTP error; a failure after that ends the stream with an
 * `event: error` carrying the usual error body, never a silent or truncated success.
 */
export async function sendChatEventStream(
  reply: FastifyReply,
  events: AsyncGenerator<ChatStreamEvent>,
  signal: AbortSignal,
  extraHeaders: Record<string, string> = {},
): Promise<void> {
  const first = await events.next();

  reply.hijack();
  const response = reply.raw;
  response.writeHead(200, {
    ...(reply.getHeaders() as OutgoingHttpHeaders),
    ...extraHeaders,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });

  const write = async (text: string) => {
    if (!response.write(text)) await once(response, 'drain', { signal });
  };

  try {
    if (!first.done) await write(formatEvent(first.value));
    for await (const event of events) await write(formatEvent(event));
  } catch (error) {
    const described = describeError(error);
    if (signal.aborted || (error as { code?: unknown })?.code === LlmErrorCode.REQUEST_ABORTED) return;
    if (!described) logger.error('Chat stream failed', error instanceof Error ? error.stack : String(error));
    const body = errorResponse(
      described?.statusCode ?? 500,
      described?.code ?? 'INTERNAL_ERROR',
      described?.message ?? 'Internal server error',
      String(reply.request.id),
    );
    response.write(`event: error\ndata: ${JSON.stringify(body)}\n\n`);
  } finally {
    response.end();
  }
}
