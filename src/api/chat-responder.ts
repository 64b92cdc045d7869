import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthenticatedRequest } from '../auth/api-key.guard';
import type { ServerResponse } from 'node:http';
import { DescribedError, describeError, INTERNAL_ERROR, openAiErrorBody } from '../common/errors/all-exceptions.filter';
import { errorResponse } from '../common/errors/error-response';
import { GatewayError } from '../common/errors/gateway-error';
import { isModelName, MODEL_HEADER } from '../common/model-name';
import { Environment } from '../config/environment';
import { ShutdownService } from '../lifecycle/shutdown.service';
import type { ChatStreamPart, ToolCallDelta } from '../litellm/litellm.types';
import type { CallContext, ChatStream, ChatStreamSummary } from '../routing/llm.service';

export const FALLBACK_REASON_HEADER = 'x-llm-fallback-reason';

/** The caller's side of a call: its abort controller fires when the caller leaves, with the reason why. */
export function abortOnClientDisconnect(reply: FastifyReply): AbortController {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new GatewayError('REQUEST_ABORTED', 'The caller went away'));
  });
  return controller;
}

/** Who is calling and how to reach the pipeline's records: the request id, the caller key's id, the route. */
export function callContext(request: FastifyRequest, signal?: AbortSignal): CallContext {
  return {
    requestId: String(request.id),
    callerKeyId: (request as AuthenticatedRequest).caller?.keyId,
    route: request.routeOptions.url ?? 'unknown',
    signal,
  };
}

/** The headers that say which model served a call; built only from names that passed the model-name rule. */
export function servedByHeaders(model: string, fallbackReason?: string): Record<string, string> {
  const headers: Record<string, string> = {};
  if (isModelName(model)) headers[MODEL_HEADER] = model;
  if (fallbackReason) headers[FALLBACK_REASON_HEADER] = fallbackReason;
  return headers;
}

/** How a stream's parts, its end and a failure after its start are written: the native format, or OpenAI's. */
export interface StreamFormat {
  parts(parts: ChatStreamPart[]): string;
  end(summary: ChatStreamSummary): string;
  error(described: DescribedError, requestId: string): string;
}

/**
 * `data: {"content"}` per text delta and `data: {"toolCalls": [...]}` per tool-call delta, as they arrive; then
 * `data: {"model", "upstreamModel", "usage", "finishReason", ...}` and `data: [DONE]`.
 */
export function nativeStreamFormat(extra: Record<string, unknown> = {}): StreamFormat {
  return {
    parts(parts) {
      let text = '';
      for (const part of parts) {
        if (part.content !== undefined) text += `data: ${JSON.stringify({ content: part.content })}\n\n`;
        if (part.toolCalls !== undefined) text += `data: ${JSON.stringify({ toolCalls: part.toolCalls })}\n\n`;
      }
      return text;
    },
    end({ model, upstreamModel, usage, finishReason }) {
      return `data: ${JSON.stringify({ model, upstreamModel, usage, finishReason, ...extra })}\n\ndata: [DONE]\n\n`;
    },
    error(described, requestId) {
      const body = errorResponse(described.statusCode, described.code, described.message, requestId);
      return `event: error\ndata: ${JSON.stringify(body)}\n\n`;
    },
  };
}

/** A streamed tool call's piece in OpenAI's keys (they are the gateway's own already). */
function openAiToolCallDeltas(deltas: ToolCallDelta[]): object[] {
  return deltas.map(({ index, id, type, function: fn }) => ({ index, ...(id !== undefined && { id }), ...(type && { type }), ...(fn && { function: fn }) }));
}

/**
 * OpenAI's chunks (`chat.completion.chunk`): the role in the first, a delta per part, the finish reason, then, when
 * the caller asked for it (`stream_options.include_usage`), a chunk with no choices and the usage; `[DONE]`.
 * A failure after the start is `data: {"error": {...}}`, which OpenAI's SDKs raise as an APIError.
 */
export function openAiStreamFormat(stream: { id: string; model: string }, includeUsage: boolean): StreamFormat {
  const created = Math.floor(Date.now() / 1000);
  const head = `{"id":${JSON.stringify(stream.id)},"object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(stream.model)},"choices":[`;
  const chunk = (delta: object, finishReason: string | null) => `data: ${head}${JSON.stringify({ index: 0, delta, finish_reason: finishReason })}]}\n\n`;
  let roleSent = false;
  let finishSent = false;
  const delta = (fields: Record<string, unknown>) => {
    if (roleSent) return fields;
    roleSent = true;
    return { role: 'assistant', ...fields };
  };
  return {
    parts(parts) {
      let text = '';
      for (const part of parts) {
        const fields: Record<string, unknown> = {};
        if (part.content !== undefined) fields.content = part.content;
        if (part.toolCalls !== undefined) fields.tool_calls = openAiToolCallDeltas(part.toolCalls);
        if (part.finishReason) finishSent = true;
        text += chunk(delta(fields), part.finishReason ?? null);
      }
      return text;
    },
    end({ usage, finishReason }) {
      let text = finishSent ? '' : chunk(delta({}), finishReason ?? 'stop');
      if (includeUsage) {
        const totals = { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens, total_tokens: usage.totalTokens };
        text += `data: ${head}],"usage":${JSON.stringify(totals)}}\n\n`;
      }
      return `${text}data: [DONE]\n\n`;
    },
    error(described) {
      return `data: ${JSON.stringify(openAiErrorBody(described))}\n\n`;
    },
  };
}

/**
 * Writes a started stream as Server-Sent Events: one socket write per upstream read. A slow caller is
 * waited for (back-pressure) up to STREAM_WRITE_TIMEOUT_MS per write; a failure after the first byte ends
 * the stream with an `event: error` carrying the usual error body, never a silent or truncated success.
 */
@Injectable()
export class ChatResponder {
  private readonly logger = new Logger(ChatResponder.name);
  private readonly writeTimeoutMs: number;

  constructor(
    private readonly shutdown: ShutdownService,
    config: ConfigService<Environment, true>,
  ) {
    this.writeTimeoutMs = config.get('STREAM_WRITE_TIMEOUT_MS', { infer: true });
  }

  async sendStream(reply: FastifyReply, stream: ChatStream, abort: AbortController, format: StreamFormat): Promise<void> {
    const response = reply.raw;
    const untrack = this.shutdown.trackStream(() =>
      abort.abort(new GatewayError('SHUTTING_DOWN', 'The gateway is shutting down; retry the call')),
    );
    try {
      reply.hijack();
      // setHeader, not writeHead's argument: the request log reads x-llm-model back from the response.
      for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) response.setHeader(name, value);
      const own = { ...stream.rateLimitHeaders, ...servedByHeaders(stream.model, stream.fallbackReason) };
      for (const [name, value] of Object.entries(own)) response.setHeader(name, value);
      response.setHeader('content-type', 'text/event-stream; charset=utf-8');
      response.setHeader('cache-control', 'no-cache, no-transform');
      response.setHeader('x-accel-buffering', 'no');
      // Hijacked replies skip Fastify's onSend hooks, where the shutdown adds this to the others.
      if (this.shutdown.isClosing) response.setHeader('connection', 'close');
      response.writeHead(200);
      for await (const parts of stream.reads) {
        const text = format.parts(parts);
        if (text.length > 0 && !response.write(text)) await this.drained(response, abort, String(reply.request.id));
      }
      response.write(format.end(stream.summary()));
    } catch (error) {
      const described = describeError(error);
      if (described.code === 'REQUEST_ABORTED' || described.code === 'STREAM_WRITE_TIMEOUT' || response.destroyed) return;
      if (described === INTERNAL_ERROR) this.logger.error({ msg: 'Chat stream failed', requestId: String(reply.request.id), stack: error instanceof Error ? error.stack : String(error) });
      response.write(format.error(described, String(reply.request.id)));
    } finally {
      untrack();
      await stream.reads.return?.();
      response.end();
    }
  }

  /** Waits for a full socket buffer to drain; a caller that reads nothing for STREAM_WRITE_TIMEOUT_MS is cut off. */
  private drained(response: ServerResponse, abort: AbortController, requestId: string): Promise<void> {
    return new Promise((resolve, reject) => {
      if (abort.signal.aborted) {
        response.destroy();
        return reject(abort.signal.reason);
      }
      const done = () => {
        clearTimeout(timer);
        response.off('drain', onDrain);
        response.off('close', onClose);
        abort.signal.removeEventListener('abort', onAbort);
      };
      const onDrain = () => {
        done();
        resolve();
      };
      const onClose = () => {
        done();
        reject(new GatewayError('REQUEST_ABORTED', 'The caller went away'));
      };
      // The shutdown ending the stream: a caller that reads nothing cannot be told, only disconnected.
      const onAbort = () => {
        done();
        response.destroy();
        reject(abort.signal.reason);
      };
      abort.signal.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(() => {
        done();
        const failure = new GatewayError('STREAM_WRITE_TIMEOUT', `The caller read nothing for ${this.writeTimeoutMs} ms`);
        this.logger.warn({ msg: failure.message, requestId });
        abort.abort(failure);
        response.destroy();
        reject(failure);
      }, this.writeTimeoutMs);
      response.once('drain', onDrain);
      response.once('close', onClose);
    });
  }
}
