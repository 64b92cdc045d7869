import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import OpenAI from 'openai';
import { Environment } from '../config/environment';
import { createUpstreamFetch } from './upstream-fetch';

/**
 * Owns the ONE OpenAI SDK client the gateway uses, pointed at LiteLLM. Built once at boot and shared by
 * every request, so connections to LiteLLM are kept alive and reused.
 *
 * Retries: LLM_MAX_RETRIES (default 0) is the SDK's own retry count. LiteLLM retries provider errors
 * itself (router_settings.num_retries), so by default this layer does not retry at all.
 */
@Injectable()
export class LlmClientProvider {
  readonly client: OpenAI;

  constructor(config: ConfigService<Environment, true>) {
    this.client = new OpenAI({
      baseURL: `${config.get('LITELLM_URL', { infer: true }).replace(/\/+$/, '')}/v1`,
      apiKey: config.get('LITELLM_API_KEY', { infer: true }),
      timeout: config.get('LLM_TIMEOUT_MS', { infer: true }),
      maxRetries: config.get('LLM_MAX_RETRIES', { infer: true }),
      fetch: createUpstreamFetch(),
      // Fixed, so that OPENAI_LOG=debug in the environment cannot make the SDK print request bodies
      // (prompts) and headers to the console: the gateway's own logs say what happened to a call.
      logLevel: 'warn',
    });
  }
}
