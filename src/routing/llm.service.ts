import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { ErrorCode, GatewayError } from '../common/errors/gateway-error';
import { Environment } from '../config/environment';
import { LiteLLMClient, UpstreamOperation } from '../litellm/litellm.client';
import { ChatRequest, ChatStreamPart, FinishReason, TokenUsage, UpstreamChatStream, AttemptMetering } from '../litellm/litellm.types';
import { MetricsService } from '../metrics/metrics.service';
import { OrganizationsService } from '../organizations/organizations.service';
import { fallsBack } from './fallback-policy';

/** Who is calling, for logs and (next) for the ledger and limits; and the caller's abort signal. */
export interface CallContext {
  requestId: string;
  callerKeyId?: string;
  /** Fires when the caller goes away: every attempt of the call stops. */
  signal?: AbortSignal;
}

/** Where a call goes: the model asked of LiteLLM first, and the one tried once if that fails. */
interface Target {
  organizationId?: string;
  /** The model the caller named, when it named one. */
  requestedModel?: string;
  primary: string;
  fallback?: string;
}

/** One upstream attempt, when it ended: what the completion stage (the usage ledger, next) receives. */
export interface AttemptRecord {
  requestId: string;
  /** 1 for the primary model, 2 for the fallback. */
  attempt: 1 | 2;
  operation: UpstreamOperation;
  organizationId?: string;
  callerKeyId?: string;
  requestedModel?: string;
  model: string;
  fallbackReason?: ErrorCode;
  /** `ok`, or the code the attempt failed with. */
  outcome: 'ok' | ErrorCode;
  metering: AttemptMetering;
  startedAt: Date;
  durationMs: number;
}

const NO_USAGE: TokenUsage = Object.freeze({ promptTokens: 0, completionTokens: 0, totalTokens: 0 });

export interface ChatResult {
  content: string;
  /** The model the gateway asked LiteLLM for (the organization's, its fallback, or the one named). */
  model: string;
  /** What the provider reported serving (e.g. gpt-4o-2024-08-06), when it reported it. */
  upstreamModel?: string;
  usage: TokenUsage;
  finishReason?: FinishReason;
  /** Organization calls: the primary model's error code, when the fallback served the call. */
  fallbackReason?: ErrorCode;
}

/** The end of a stream, known once its reads are done. */
export interface ChatStreamSummary {
  model: string;
  upstreamModel?: string;
  usage: TokenUsage;
  finishReason?: FinishReason;
}

/** A stream known to be flowing (its first read has arrived), not yet sent. */
export interface ChatStream {
  model: string;
  fallbackReason?: ErrorCode;
  /**
   * Each upstream read's parts, in order; throws a GatewayError if the stream fails after its start. Whoever
   * takes the stream must iterate it to its end or call `return()`: that ends the upstream call.
   */
  reads: AsyncIterableIterator<ChatStreamPart[]>;
  /** Valid once `reads` has ended. */
  summary(): ChatStreamSummary;
}

export interface EmbeddingsResult {
  embeddings: number[][];
  model: string;
  upstreamModel?: string;
  dimensions: number;
  usage: TokenUsage;
}

/** A started attempt that the pipeline finishes: its record is written when it ends. */
interface Started<T> {
  value: T;
  model: string;
}

/**
 * The one pipeline every call to a model goes through, whatever the route:
 *   resolve the target (the named or default model, or the organization's preferences)
 *   → admission (nothing refuses yet; rate limits and budgets plug in here)
 *   → attempts under the fallback policy (an organization's fallback model, once)
 *   → completion (each attempt's record; the usage ledger plugs in here)
 * It knows nothing about HTTP: the API layer turns its results into JSON or an event stream.
 */
@Injectable()
export class LlmService {
  private readonly logger = new Logger(LlmService.name);
  private readonly defaultChatModel: string;
  private readonly defaultEmbeddingModel: string;
  private readonly fallbackOnContentPolicy: boolean;

  constructor(
    private readonly litellm: LiteLLMClient,
    private readonly organizations: OrganizationsService,
    private readonly metrics: MetricsService,
    config: ConfigService<Environment, true>,
  ) {
    this.defaultChatModel = config.get('DEFAULT_CHAT_MODEL', { infer: true });
    this.defaultEmbeddingModel = config.get('DEFAULT_EMBEDDING_MODEL', { infer: true });
    this.fallbackOnContentPolicy = config.get('FALLBACK_ON_CONTENT_POLICY', { infer: true });
  }

  /** A chat with the named model, or DEFAULT_CHAT_MODEL. */
  async chatCompletion(request: ChatRequest, context: CallContext): Promise<ChatResult> {
    return this.chat(this.plainTarget(request.model, this.defaultChatModel), request, context);
  }

  /** A chat for an organization: its model (or the one named), and its fallback once on a non-retryable failure. */
  async chatCompletionForOrg(organizationId: string, request: ChatRequest, context: CallContext): Promise<ChatResult> {
    return this.chat(await this.organizationTarget(organizationId, request.model), request, context);
  }

  async streamChatCompletion(request: ChatRequest, context: CallContext): Promise<ChatStream> {
    return this.stream(this.plainTarget(request.model, this.defaultChatModel), request, context);
  }

  /** Streams fall back only before their first read, hence before any byte reaches the caller. */
  async streamChatCompletionForOrg(organizationId: string, request: ChatRequest, context: CallContext): Promise<ChatStream> {
    return this.stream(await this.organizationTarget(organizationId, request.model), request, context);
  }

  async generateEmbeddings(input: string[], model: string | undefined, context: CallContext): Promise<EmbeddingsResult> {
    const target = this.plainTarget(model, this.defaultEmbeddingModel);
    this.admit(target, context);
    const served = await this.attempt(target, context, 'embeddings', async (attemptModel) => {
      const answer = await this.litellm.embed(attemptModel, input, context.signal);
      return { value: answer, ended: answer };
    });
    const { embeddings, upstreamModel, usage } = served.value;
    return { embeddings, model: served.model, upstreamModel, dimensions: embeddings[0].length, usage: usage ?? NO_USAGE };
  }

  async generateEmbedding(text: string, model: string | undefined, context: CallContext) {
    const { embeddings, ...rest } = await this.generateEmbeddings([text], model, context);
    return { ...rest, embedding: embeddings[0] };
  }

  // --- stage 1: the target -------------------------------------------------------------------------------

  private plainTarget(requestedModel: string | undefined, defaultModel: string): Target {
    return { requestedModel, primary: requestedModel ?? defaultModel };
  }

  /** Unknown organization: 404 before anything goes upstream. */
  private async organizationTarget(organizationId: string, requestedModel: string | undefined): Promise<Target> {
    const preferences = await this.organizations.getPreferences(organizationId);
    const primary = requestedModel ?? preferences.llmModel;
    const fallback = preferences.llmFallbackModel ?? undefined;
    return { organizationId, requestedModel, primary, fallback: fallback === primary ? undefined : fallback };
  }

  // --- stage 2: admission --------------------------------------------------------------------------------

  /** Everything is admitted for now; rate limits and budgets will refuse here, before anything goes upstream. */
  private admit(_target: Target, _context: CallContext): void {}

  // --- stage 3: attempts under the fallback policy ------------------------------------------------------

  private async chat(target: Target, request: ChatRequest, context: CallContext): Promise<ChatResult> {
    this.admit(target, context);
    const served = await this.attempt(target, context, 'chat', async (model) => {
      const answer = await this.litellm.chat({ ...request, model }, context.signal);
      return { value: answer, ended: answer };
    });
    const { content, upstreamModel, usage, finishReason } = served.value;
    return {
      content,
      model: served.model,
      upstreamModel,
      usage: usage ?? NO_USAGE,
      finishReason,
      ...(served.fallbackReason && { fallbackReason: served.fallbackReason }),
    };
  }

  private async stream(target: Target, request: ChatRequest, context: CallContext): Promise<ChatStream> {
    this.admit(target, context);
    const served = await this.attempt(target, context, 'chat_stream', async (model, finish) => {
      const upstream = await this.litellm.streamChat({ ...request, model }, context.signal);
      const reads = upstream.reads();
      let first: IteratorResult<ChatStreamPart[], void>;
      try {
        first = await reads.next();
      } catch (error) {
        finish(upstream.metering, error);
        throw error;
      }
      // From here the stream is the caller's: its record is written when it ends, however it ends.
      return { value: new RelayedStream(model, upstream, reads, first, finish, context.signal) };
    });
    return { model: served.model, fallbackReason: served.fallbackReason, reads: served.value, summary: () => served.value.summary() };
  }

  /**
   * Runs `call` on the target's model, and once more on its fallback model when the first attempt failed
   * in a way the fallback policy accepts. An attempt that returns `ended` is finished then; a stream returns
   * without it and reports its end through `finish`, long after `call` returned.
   */
  private async attempt<T>(
    target: Target,
    context: CallContext,
    operation: UpstreamOperation,
    call: (model: string, finish: Finish) => Promise<{ value: T; ended?: AttemptMetering }>,
  ): Promise<Started<T> & { fallbackReason?: ErrorCode }> {
    const run = async (model: string, attempt: 1 | 2, fallbackReason?: ErrorCode): Promise<Started<T>> => {
      const startedAt = new Date();
      const started = performance.now();
      let recorded = false;
      const finish = (metering: AttemptMetering, error?: unknown) => {
        if (recorded) return;
        recorded = true;
        this.complete({
          requestId: context.requestId,
          attempt,
          operation,
          organizationId: target.organizationId,
          callerKeyId: context.callerKeyId,
          requestedModel: target.requestedModel,
          model,
          fallbackReason,
          outcome: outcomeOf(error),
          metering,
          startedAt,
          durationMs: performance.now() - started,
        });
      };
      try {
        const { value, ended } = await call(model, finish);
        if (ended) finish(ended);
        return { value, model };
      } catch (error) {
        finish({}, error);
        throw error;
      }
    };

    try {
      return await run(target.primary, 1);
    } catch (failure) {
      const fallback = target.fallback;
      if (!(failure instanceof GatewayError) || !fallback || !fallsBack(failure.code, this.fallbackOnContentPolicy)) throw failure;
      this.logger.warn({
        msg: `${target.primary} failed with ${failure.code}; trying the fallback model ${fallback}`,
        requestId: context.requestId,
        organizationId: target.organizationId,
        model: target.primary,
        fallbackModel: fallback,
        reason: failure.code,
      });
      this.metrics.fallbacks.inc({ reason: failure.code });
      try {
        return { ...(await run(fallback, 2, failure.code)), fallbackReason: failure.code };
      } catch (second) {
        if (!(second instanceof GatewayError)) throw second;
        throw new GatewayError(
          second.code,
          `Primary model ${target.primary} failed (${failure.code}: ${failure.message}); ` +
            `fallback model ${fallback} failed too (${second.code}: ${second.message})`,
          second.headers,
        );
      }
    }
  }

  // --- stage 4: completion ----------------------------------------------------------------------------

  /** Every attempt ends here exactly once, whether it served, failed or was cut. The usage ledger plugs in here. */
  private complete(record: AttemptRecord): void {
    if (record.outcome !== 'ok') {
      this.logger.debug({ msg: `attempt ${record.attempt} on ${record.model} ended with ${record.outcome}`, requestId: record.requestId });
    }
  }
}

type Finish = (metering: AttemptMetering, error?: unknown) => void;

/** How an attempt ended: `ok`, its code, or INTERNAL_ERROR for a bug (thrown on as it is, for the filter to log). */
function outcomeOf(error: unknown): 'ok' | ErrorCode {
  if (error === undefined) return 'ok';
  return error instanceof GatewayError ? error.code : 'INTERNAL_ERROR';
}

const DONE: IteratorReturnResult<void> = Object.freeze({ done: true, value: undefined });

/**
 * A started stream as the caller receives it: its first read (awaited by the pipeline, so that a refusal
 * could still fall back) comes first, then the rest. When it ends (completely, by a failure, or by
 * `return()` when the caller leaves), the attempt is finished exactly once. A class rather than an async
 * generator: a generator that never started does not run its `finally` on `return()`.
 */
class RelayedStream implements AsyncIterableIterator<ChatStreamPart[]> {
  private pending: ChatStreamPart[] | undefined;
  private ended = false;

  constructor(
    private readonly model: string,
    private readonly upstream: UpstreamChatStream,
    private readonly reads: AsyncGenerator<ChatStreamPart[], void, undefined>,
    first: IteratorResult<ChatStreamPart[], void>,
    private readonly finish: Finish,
    private readonly callerSignal: AbortSignal | undefined,
  ) {
    if (first.done) this.end();
    else this.pending = first.value;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<ChatStreamPart[], void>> {
    if (this.pending) {
      const parts = this.pending;
      this.pending = undefined;
      return { done: false, value: parts };
    }
    if (this.ended) return DONE;
    try {
      const read = await this.reads.next();
      if (read.done) {
        this.end();
        return DONE;
      }
      return read;
    } catch (error) {
      this.end(error);
      throw error;
    }
  }

  async return(): Promise<IteratorResult<ChatStreamPart[], void>> {
    if (!this.ended) {
      this.pending = undefined;
      await this.reads.return(undefined);
      const reason = this.callerSignal?.reason;
      this.end(reason instanceof GatewayError ? reason : new GatewayError('REQUEST_ABORTED', 'The caller went away before the stream ended'));
    }
    return DONE;
  }

  summary(): ChatStreamSummary {
    const { upstreamModel, usage, finishReason } = this.upstream.metering;
    return { model: this.model, upstreamModel, usage: usage ?? NO_USAGE, finishReason };
  }

  private end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.finish(this.upstream.metering, error);
  }
}
