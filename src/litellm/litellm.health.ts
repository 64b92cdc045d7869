import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { HealthIndicatorService } from '@nestjs/terminus';
import { Environment } from '../config/environment';
import { urlWithoutCredentials } from '../logging/safe-url';

/** Several probes within this window (readiness, dashboards, several kubelets) share one call to LiteLLM. */
export const LITELLM_CHECK_CACHE_MS = 2_000;

/** Socket errors worth naming: what an operator looks for first. */
const CONNECTION_FAILURES: Record<string, string> = {
  ECONNREFUSED: 'refused the connection',
  ECONNRESET: 'reset the connection',
  ENOTFOUND: 'is not a host name that resolves',
  EAI_AGAIN: 'is not a host name that resolves (DNS lookup failed)',
  EHOSTUNREACH: 'is unreachable',
  ENETUNREACH: 'is unreachable',
  UND_ERR_SOCKET: 'closed the connection',
};

/**
 * LiteLLM is ready for the gateway when it lists its models to the gateway's own key: one authenticated,
 * free call (GET /v1/models reads LiteLLM's configuration; no provider is called). So a wrong LITELLM_API_KEY
 * fails readiness, naming the cause, instead of passing it while every call fails. Never LiteLLM's GET /health:
 * that one makes a real, paid completion call to every configured model.
 */
@Injectable()
export class LiteLLMHealthIndicator {
  private readonly baseUrl: string;
  private readonly modelsUrl: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;

  constructor(
    private readonly healthIndicators: HealthIndicatorService,
    config: ConfigService<Environment, true>,
  ) {
    // fetch() refuses a URL with a user or password, and its error would quote them: never in a probe's answer.
    this.baseUrl = urlWithoutCredentials(config.get('LITELLM_URL', { infer: true }));
    this.modelsUrl = `${this.baseUrl}/v1/models`;
    this.apiKey = config.get('LITELLM_API_KEY', { infer: true }) ?? '';
    this.timeoutMs = config.get('HEALTH_CHECK_TIMEOUT_MS', { infer: true });
  }

  isReady(key: string) {
    return (
      this.healthIndicators
        .check(key)
        .attempt(() => this.listModels())
        // A backstop only: listModels() names its own timeout, with the URL.
        .withTimeout(this.timeoutMs + 500)
        .cacheFor(LITELLM_CHECK_CACHE_MS)
    );
  }

  private async listModels(): Promise<{ url: string; models: number }> {
    let response: Response;
    try {
      response = await fetch(this.modelsUrl, {
        headers: { authorization: `Bearer ${this.apiKey}` },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw new Error(this.describeFailure(error));
    }
    const text = await response.text().catch(() => '');
    if (response.status === 401 || response.status === 403) {
      throw new Error(`LiteLLM refused the gateway's key (${response.status}): check LITELLM_API_KEY`);
    }
    const body = parseJson(text) as { data?: unknown; error?: { type?: unknown } } | undefined;
    // Without a database LiteLLM knows only its master key, and answers any other with 400 no_db_connection.
    if (body?.error?.type === 'no_db_connection') {
      throw new Error(
        `LiteLLM refused the gateway's key (${response.status} no_db_connection: without a database LiteLLM accepts only its master key): check LITELLM_API_KEY`,
      );
    }
    if (!response.ok) throw new Error(`LiteLLM at ${this.baseUrl} answered GET /v1/models with HTTP ${response.status}`);
    if (!Array.isArray(body?.data)) throw new Error(`LiteLLM at ${this.baseUrl} answered GET /v1/models with something that is not a model list`);
    return { url: this.baseUrl, models: body.data.length };
  }

  private describeFailure(error: unknown): string {
    const name = (error as { name?: unknown })?.name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      return `LiteLLM at ${this.baseUrl} did not answer within ${this.timeoutMs} ms (HEALTH_CHECK_TIMEOUT_MS)`;
    }
    const cause = (error as { cause?: { code?: unknown; message?: unknown } })?.cause;
    const code = typeof cause?.code === 'string' ? cause.code : undefined;
    if (code && CONNECTION_FAILURES[code]) return `LiteLLM at ${this.baseUrl} ${CONNECTION_FAILURES[code]} (${code})`;
    const detail = code ?? (typeof cause?.message === 'string' ? cause.message : String((error as Error)?.message ?? error));
    return `LiteLLM at ${this.baseUrl} could not be reached (${detail})`;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
