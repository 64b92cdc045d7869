import { Injectable, OnApplicationShutdown } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import OpenAI from 'openai';
import { Agent } from 'undici';
import { Environment } from '../config/environment';
import { GatedRequestOptions } from './send-gate';
import { createUpstreamFetch, plainHeaders } from './upstream-fetch';

/** Added to the gateway's own deadlines for undici's: ours fire first and say what happened. */
const TRANSPORT_TIMEOUT_MARGIN_MS = 5_000;

/**
 * The SDK's client, with two additions in prepareRequest, the SDK's hook for the last step before its fetch:
 * - a call made with `sendWhen` (send-gate.ts) is built at once and sent only when its gate opens; an error
 *   there reaches the caller as it is, without the SDK's retries;
 * - the request's web Headers become a plain object once, here: the SDK formats its request details for a
 *   debug log even when that level is off, and the transport needs a plain object too; each iterated the
 *   Headers on every call.
 */
export class GatedOpenAI extends OpenAI {
  protected override async prepareRequest(request: RequestInit, { options }: { url: string; options: object }): Promise<void> {
    request.headers = plainHeaders(request.headers);
    await (options as GatedRequestOptions).sendWhen;
  }
}

/**
 * Owns the ONE OpenAI SDK client the gateway uses, pointed at LiteLLM, and the connection pool under it.
 * Built once at boot and shared by every request, so connections to LiteLLM are kept alive and reused.
 *
 * Retries: LLM_MAX_RETRIES (default 0) is the SDK's own retry count. LiteLLM retries provider errors
 * itself (router_settings.num_retries), so by default this layer does not retry at all.
 */
@Injectable()
export class LlmClientProvider implements OnApplicationShutdown {
  readonly client: OpenAI;
  private readonly agent: Agent;

  constructor(config: ConfigService<Environment, true>) {
    const timeoutMs = config.get('LLM_TIMEOUT_MS', { infer: true });
    this.agent = new Agent({
      // Below the server's idle timeout (uvicorn's default is 5 s): a socket LiteLLM is closing is never
      // picked for a call, which would fail with a reset.
      keepAliveTimeout: config.get('LITELLM_KEEP_ALIVE_TIMEOUT_MS', { infer: true }),
      // A stream holds its connection to the end: too low a cap queues streams behind each other (256 made
      // the 1,000th stream wait for three others to finish).
      connections: config.get('LITELLM_MAX_CONNECTIONS', { infer: true }),
      // The gateway times calls itself (LLM_TIMEOUT_MS, LLM_STREAM_IDLE_TIMEOUT_MS); undici's 300 s defaults
      // would otherwise cut a long call first, and as a connection error instead of a timeout.
      headersTimeout: timeoutMs + TRANSPORT_TIMEOUT_MARGIN_MS,
      bodyTimeout: Math.max(timeoutMs, config.get('LLM_STREAM_IDLE_TIMEOUT_MS', { infer: true })) + TRANSPORT_TIMEOUT_MARGIN_MS,
    });
    this.client = new GatedOpenAI({
      baseURL: `${config.get('LITELLM_URL', { infer: true }).replace(/\/+$/, '')}/v1`,
      apiKey: config.get('LITELLM_API_KEY', { infer: true }),
      timeout: timeoutMs,
      maxRetries: config.get('LLM_MAX_RETRIES', { infer: true }),
      fetch: createUpstreamFetch(this.agent),
      // Fixed, so that OPENAI_LOG=debug in the environment cannot make the SDK print request bodies
      // (prompts) and headers to the console: the gateway's own logs say what happened to a call.
      logLevel: 'warn',
    });
  }

  /** Calls are over by now (the server has closed); what is left, such as a body read after [DONE], is dropped. */
  async onApplicationShutdown(): Promise<void> {
    await this.agent.destroy();
  }
}
