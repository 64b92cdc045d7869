import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { randomUUID } from 'node:crypto';
import { ErrorCode, GatewayError } from '../common/errors/gateway-error';
import { Environment } from '../config/environment';
import { LiteLLMClient, UpstreamOperation } from '../litellm/litellm.client';
import { AttemptMetering, ChatAnswer, ChatRequest, ChatStreamPart, FinishReason, TokenUsage, ToolCall, UpstreamChatStream } from '../litellm/litellm.types';
import { ModelCatalogService } from '../litellm/model-catalog.service';
import { NotSentError, SendGate, sendGate } from '../litellm/send-gate';
import { LimitsUnavailableError, limitsUnavailableError, refusalError } from '../limits/limits.errors';
import { LimitsSettings, limitsSettings } from '../limits/limits.settings';
import { LimitsStore } from '../limits/limits.store';
import type { OrganizationLimits, Reservation } from '../limits/limits.types';
import { rateLimitHeaders } from '../limits/rate-limit-headers';
import { MetricsService } from '../metrics/metrics.service';
import { OrganizationsService } from '../organizations/organizations.service';
import { estimateInputTokens, estimatePromptTokens, estimateTextTokens, StreamedTextCounter } from '../usage/token-estimator';
import { UsageLedger } from '../usage/usage-ledger.service';
import { UsageService } from '../usage/usage.service';
import { fallsBack } from './fallback-policy';

/** Who is calling and through which route, for logs, the ledger and limits; and the caller's abort signal. */
export interface CallContext {
  requestId: string;
  callerKeyId?: string;
  /** The route template the call came in on, e.g. /v1/chat. */
  route: string;
  /** Fires when the caller goes away: every attempt of the call stops. */
  signal?: AbortSignal;
}

/** Where a call goes: the model asked of LiteLLM first, and the one tried once if that fails. */
interface Target {
  organizationId?: string;
  /** The organization's limits, checked at admission. */
  limits?: OrganizationLimits;
  /** The model the caller named, when it named one. */
  requestedModel?: string;
  primary: string;
  fallback?: string;
}

/** One call on its way through the pipeline: its own id (the ledger's key), where it goes, who asked. */
interface Call {
  id: string;
  target: Target;
  context: CallContext;
  operation: UpstreamOperation;
  /** The prompt's tokens, counted only when needed: an estimate for the token limits, or a usage record. */
  promptTokens: () => number;
  /** The most completion tokens the call can use: its maxTokens, or LIMITS_DEFAULT_MAX_TOKENS; 0 for embeddings. */
  maxCompletionTokens: number;
  /** What admission reserved, released when the call's last attempt ends with the tokens it used. */
  reservation?: Reservation | null;
  tokensUsed: number;
  /** OpenAI's x-ratelimit-* headers, for every answer of a limited organization or key. */
  rateLimitHeaders: Record<string, string>;
}

/**
 * Ends an attempt, exactly once: its metering, the failure if it failed, and the text it produced so far
 * (a started stream, or a plain answer), from which completion tokens are counted when none were reported.
 */
type Finish = (metering: AttemptMetering, error?: unknown, output?: Output) => void;

/** What an attempt produced: its completion's tokens are counted from it when the upstream reported none. */
type Output = { tokens(): number };

/** One attempt as the completion stage records it. */
interface AttemptRecord {
  attempt: 1 | 2;
  model: string;
  fallbackReason?: ErrorCode;
  startedAt: Date;
  durationMs: number;
}

const NO_USAGE: TokenUsage = Object.freeze({ promptTokens: 0, completionTokens: 0, totalTokens: 0 });

export interface ChatResult {
  /** The gateway's id of the call: the usage ledger's key. */
  callId: string;
  /** null when the model only called tools, or refused. */
  content: string | null;
  toolCalls?: ToolCall[];
  /** The model the gateway asked LiteLLM for (the organization's, its fallback, or the one named). */
  model: string;
  /** What the provider reported serving (e.g. gpt-4o-2024-08-06), when it reported it. */
  upstreamModel?: string;
  usage: TokenUsage;
  finishReason?: FinishReason;
  /** Organization calls: the primary model's error code, when the fallback served the call. */
  fallbackReason?: ErrorCode;
  /** OpenAI's x-ratelimit-* headers when limits apply; empty otherwise. */
  rateLimitHeaders: Record<string, string>;
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
  callId: string;
  model: string;
  fallbackReason?: ErrorCode;
  rateLimitHeaders: Record<string, string>;
  /**
   * Each upstream read's parts, in order; throws a GatewayError if the stream fails after its start. Whoever
   * takes the stream must iterate it to its end or call `return()`: that ends the upstream call.
   */
  reads: AsyncIterableIterator<ChatStreamPart[]>;
  /** Valid once `reads` has ended. */
  summary(): ChatStreamSummary;
}

export interface EmbeddingsCall {
  input: string[];
  /** A served embedding model; DEFAULT_EMBEDDING_MODEL when absent. */
  model?: string;
  dimensions?: number;
  /** The organization the call is for: its limits apply and its usage records name it. */
  organizationId?: string;
}

export interface EmbeddingsResult {
  callId: string;
  embeddings: number[][];
  model: string;
  upstreamModel?: string;
  dimensions: number;
  usage: TokenUsage;
  rateLimitHeaders: Record<string, string>;
}

/** A started attempt that the pipeline finishes: its record is written when it ends. */
interface Started<T> {
  value: T;
  model: string;
}

/**
 * The one pipeline every call to a model goes through, whatever the route:
 *   resolve the target (the named or default model, or the organization's preferences)
 *   → admission (rate limits and budgets: one atomic check and reservation), which runs while the first
 *     attempt's request is being built: the request is sent only once admitted (litellm/send-gate.ts)
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
  private readonly limitsSettings: LimitsSettings;
  /** When the limits last could not be checked and the call went through unchecked: warned once a minute. */
  private failOpenWarnedAt = 0;

  constructor(
    private readonly litellm: LiteLLMClient,
    private readonly organizations: OrganizationsService,
    private readonly ledger: UsageLedger,
    private readonly usage: UsageService,
    private readonly limits: LimitsStore,
    private readonly catalog: ModelCatalogService,
    private readonly metrics: MetricsService,
    config: ConfigService<Environment, true>,
  ) {
    this.limitsSettings = limitsSettings(config);
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

  async generateEmbeddings(request: EmbeddingsCall, context: CallContext): Promise<EmbeddingsResult> {
    const { input, dimensions, organizationId } = request;
    const target = this.plainTarget(request.model, this.defaultEmbeddingModel);
    if (organizationId) Object.assign(target, { organizationId, limits: (await this.organizations.getPreferences(organizationId)).limits });
    const call = this.call(target, context, 'embeddings', () => estimateInputTokens(input), 0);
    const admitted = sendGate(this.admit(call));
    let served;
    try {
      served = await this.attempt(call, admitted, async (model) => {
        const answer = await this.litellm.embed({ model, input, dimensions }, context.signal, admitted);
        return { value: answer, ended: answer };
      });
    } catch (error) {
      throw notSentReason(error);
    } finally {
      await this.settle(call, admitted);
    }
    const { embeddings, upstreamModel, usage } = served.value;
    return {
      callId: call.id,
      embeddings,
      model: served.model,
      upstreamModel,
      dimensions: embeddings[0].length,
      usage: usage ?? NO_USAGE,
      rateLimitHeaders: call.rateLimitHeaders,
    };
  }

  async generateEmbedding(text: string, request: Omit<EmbeddingsCall, 'input'>, context: CallContext) {
    const { embeddings, ...rest } = await this.generateEmbeddings({ ...request, input: [text] }, context);
    return { ...rest, embedding: embeddings[0] };
  }

  // --- stage 1: the target -------------------------------------------------------------------------------

  private call(target: Target, context: CallContext, operation: UpstreamOperation, promptTokens: () => number, maxTokens?: number): Call {
    let counted: number | undefined;
    return {
      id: randomUUID(),
      target,
      context,
      operation,
      // Counted once, when first needed (the admission, or the record of a call the upstream reported no usage for).
      promptTokens: () => (counted ??= promptTokens()),
      maxCompletionTokens: maxTokens ?? this.limitsSettings.defaultMaxTokens,
      tokensUsed: 0,
      rateLimitHeaders: {},
    };
  }

  private plainTarget(requestedModel: string | undefined, defaultModel: string): Target {
    return { requestedModel, primary: requestedModel ?? defaultModel };
  }

  /** Unknown organization: 404 before anything goes upstream. */
  private async organizationTarget(organizationId: string, requestedModel: string | undefined): Promise<Target> {
    const preferences = await this.organizations.getPreferences(organizationId);
    const primary = requestedModel ?? preferences.llmModel;
    const fallback = preferences.llmFallbackModel ?? undefined;
    return { organizationId, limits: preferences.limits, requestedModel, primary, fallback: fallback === primary ? undefined : fallback };
  }

  // --- stage 2: admission --------------------------------------------------------------------------------

  /**
   * The organization's limits and the caller key's, checked and reserved in one step before anything goes
   * upstream (one Redis round trip, or none when no limit applies). A refusal is a 429 with Retry-After.
   * When the limits cannot be checked, LIMITS_FAIL_MODE decides: admit unchecked (open) or 503 (closed).
   */
  private async admit(call: Call): Promise<void> {
    const { target, context } = call;
    const limits = target.limits && hasLimits(target.limits) ? target.limits : undefined;
    const keyRequestsPerMinute = context.callerKeyId ? this.limitsSettings.keyRequestsPerMinute : null;
    if (!limits && keyRequestsPerMinute === null) return;
    const countsTokens = limits !== undefined && (limits.tokensPerMinute !== null || limits.tokenBudget !== null);
    let admission;
    try {
      admission = await this.limits.admit({
        organization: limits && {
          id: target.organizationId!,
          limits,
          loadPeriodUsage: ({ startsAt, endsAt }) => this.usage.tokensBetween(target.organizationId!, startsAt, endsAt),
        },
        callerKey: keyRequestsPerMinute === null ? undefined : { id: context.callerKeyId!, requestsPerMinute: keyRequestsPerMinute },
        estimatedTokens: countsTokens ? call.promptTokens() + call.maxCompletionTokens : 0,
      });
    } catch (error) {
      if (!(error instanceof LimitsUnavailableError)) throw error;
      if (this.limitsSettings.failMode === 'closed') throw limitsUnavailableError();
      this.metrics.limitsFailOpenAdmissions.inc();
      if (Date.now() - this.failOpenWarnedAt > 60_000) {
        this.failOpenWarnedAt = Date.now();
        this.logger.warn({ msg: `Limits cannot be checked (${error.message}): calls are admitted unchecked (LIMITS_FAIL_MODE=open)`, requestId: context.requestId });
      }
      return;
    }
    call.rateLimitHeaders = rateLimitHeaders(admission.rateLimits);
    if (!admission.admitted) throw refusalError(admission.refusal, admission.rateLimits);
    call.reservation = admission.reservation;
  }

  /**
   * The call's last attempt has ended: its reservation is released, reconciled with the tokens it used (once
   * its admission has answered: a call can end before, when its caller leaves). The Redis store sends the
   * release after the answer is written, with the others of the same turn of the event loop, so that the round
   * trip is not on the caller's time. A caller that waits for the answer before calling again through this
   * replica still finds its slot free: the release is sent, or queued ahead of any later admission, before the
   * next request is read, and Redis runs one connection's commands in order. Through another replica, under
   * load, the next call may come first: holding a slot a moment longer can only refuse, never over-admit.
   */
  private async settle(call: Call, admitted: SendGate): Promise<void> {
    await admitted.catch(() => undefined);
    const reservation = call.reservation;
    call.reservation = null;
    if (reservation) void this.limits.finish(reservation, call.tokensUsed);
  }

  // --- stage 3: attempts under the fallback policy ------------------------------------------------------

  private async chat(target: Target, request: ChatRequest, context: CallContext): Promise<ChatResult> {
    const call = this.call(target, context, 'chat', () => estimatePromptTokens(request.messages, request.tools), request.maxTokens);
    const admitted = sendGate(this.admit(call));
    let served;
    try {
      served = await this.attempt(call, admitted, async (model) => {
        const answer = await this.litellm.chat({ ...request, model }, context.signal, admitted);
        return { value: answer, ended: answer, output: { tokens: () => estimateAnswerTokens(answer) } };
      });
    } catch (error) {
      throw notSentReason(error);
    } finally {
      await this.settle(call, admitted);
    }
    const { content, toolCalls, upstreamModel, usage, finishReason } = served.value;
    return {
      callId: call.id,
      content,
      ...(toolCalls && { toolCalls }),
      model: served.model,
      upstreamModel,
      usage: usage ?? NO_USAGE,
      finishReason,
      ...(served.fallbackReason && { fallbackReason: served.fallbackReason }),
      rateLimitHeaders: call.rateLimitHeaders,
    };
  }

  private async stream(target: Target, request: ChatRequest, context: CallContext): Promise<ChatStream> {
    const call = this.call(target, context, 'chat_stream', () => estimatePromptTokens(request.messages, request.tools), request.maxTokens);
    const admitted = sendGate(this.admit(call));
    let served;
    try {
      served = await this.attempt(call, admitted, async (model, finish) => {
        const upstream = await this.litellm.streamChat({ ...request, model }, context.signal, admitted);
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
    } catch (error) {
      await this.settle(call, admitted);
      throw notSentReason(error);
    }
    const stream = served.value;
    stream.onEnded(() => void this.settle(call, admitted));
    return {
      callId: call.id,
      model: served.model,
      fallbackReason: served.fallbackReason,
      rateLimitHeaders: call.rateLimitHeaders,
      reads: stream,
      summary: () => stream.summary(),
    };
  }

  /**
   * Runs `call` on the target's model, and once more on its fallback model when the first attempt failed
   * in a way the fallback policy accepts. An attempt that returns `ended` is finished then; a stream returns
   * without it and reports its end through `finish`, long after `call` returned.
   */
  private async attempt<T>(
    call: Call,
    admitted: SendGate,
    send: (model: string, finish: Finish) => Promise<{ value: T; ended?: AttemptMetering; output?: Output }>,
  ): Promise<Started<T> & { fallbackReason?: ErrorCode }> {
    const { target, context } = call;
    const run = async (model: string, attempt: 1 | 2, fallbackReason?: ErrorCode): Promise<Started<T>> => {
      const clock = { startedAt: new Date(), started: performance.now() };
      // The first attempt is built while the admission is out: its record's time runs from when it may be sent.
      if (attempt === 1) admitted.then(() => Object.assign(clock, { startedAt: new Date(), started: performance.now() }), () => undefined);
      let recorded = false;
      const finish: Finish = (metering, error, output) => {
        if (recorded) return;
        recorded = true;
        const { startedAt, started } = clock;
        this.complete(call, { attempt, model, fallbackReason, startedAt, durationMs: performance.now() - started }, metering, error, output);
      };
      try {
        const { value, ended, output } = await send(model, finish);
        if (ended) finish(ended, undefined, output);
        return { value, model };
      } catch (error) {
        // Stopped at admission: nothing was sent, so there was no attempt to record.
        if (!(error instanceof NotSentError)) finish({}, error);
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

  /**
   * Every attempt ends here exactly once, whether it served, failed or was cut, and goes to the usage ledger.
   * Usage is what the upstream reported; when it reported none for an attempt that consumed tokens (a stream
   * the caller left or the upstream cut, an answer without usage), the tokens are counted here and marked as
   * estimated. An attempt refused before any output costs nothing unless the upstream said otherwise.
   */
  private complete(
    call: Call,
    attempt: AttemptRecord,
    metering: AttemptMetering,
    error: unknown,
    output: Output | undefined,
  ): void {
    try {
      this.recordAttempt(call, attempt, metering, error, output);
    } catch (failure) {
      // A record that cannot be made must not fail the call it describes.
      this.metrics.usageRecordsDropped.inc();
      this.logger.error({ msg: `Usage record not made: ${(failure as Error).message}`, requestId: call.context.requestId });
    }
  }

  private recordAttempt(
    call: Call,
    attempt: AttemptRecord,
    metering: AttemptMetering,
    error: unknown,
    output: Output | undefined,
  ): void {
    const outcome = ledgerOutcome(error);
    let usage = metering.usage;
    const estimated = usage === undefined && (outcome === 'ok' || outcome === 'aborted_by_caller' || output !== undefined);
    if (estimated) {
      const promptTokens = call.promptTokens();
      const completionTokens = output ? output.tokens() : 0;
      usage = { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens };
    }
    const { target, context } = call;
    this.ledger.record({
      callId: call.id,
      attempt: attempt.attempt,
      requestId: context.requestId,
      organizationId: target.organizationId ?? null,
      callerKeyId: context.callerKeyId ?? null,
      route: context.route,
      operation: call.operation,
      requestedModel: target.requestedModel ?? null,
      model: attempt.model,
      upstreamModel: metering.upstreamModel ?? null,
      fallbackReason: attempt.fallbackReason ?? null,
      outcome,
      promptTokens: usage?.promptTokens ?? 0,
      completionTokens: usage?.completionTokens ?? 0,
      totalTokens: usage?.totalTokens ?? 0,
      cachedPromptTokens: metering.cachedPromptTokens ?? null,
      tokensEstimated: estimated,
      costUsd: metering.costUsd ?? null,
      startedAt: attempt.startedAt,
      timeToFirstByteMs: metering.timeToFirstByteMs === undefined ? null : Math.round(metering.timeToFirstByteMs),
      durationMs: Math.round(attempt.durationMs),
    });
    if (usage) {
      call.tokensUsed += usage.totalTokens;
      const labels = { model: this.catalog.metricLabel(attempt.model), route: context.route };
      this.metrics.tokens.inc({ ...labels, type: 'prompt' }, usage.promptTokens);
      this.metrics.tokens.inc({ ...labels, type: 'completion' }, usage.completionTokens);
    }
    if (outcome !== 'ok') {
      this.logger.debug({ msg: `attempt ${attempt.attempt} on ${attempt.model} ended with ${outcome}`, requestId: context.requestId });
    }
  }
}

/** The ledger's outcome: `ok`, `aborted_by_caller`, `truncated`, or the code the attempt failed with. */
function ledgerOutcome(error: unknown): string {
  const outcome = outcomeOf(error);
  if (outcome === 'REQUEST_ABORTED') return 'aborted_by_caller';
  if (outcome === 'UPSTREAM_STREAM_TRUNCATED') return 'truncated';
  return outcome;
}

/** A plain answer's completion tokens, when the upstream did not report them: its text and its tool calls. */
function estimateAnswerTokens(answer: ChatAnswer): number {
  let tokens = answer.content ? estimateTextTokens(answer.content) : 0;
  for (const call of answer.toolCalls ?? []) tokens += estimateTextTokens(call.function.name) + estimateTextTokens(call.function.arguments);
  return tokens;
}

/** A call stopped at admission is answered with the admission's reason (a 429, a 503), not as a failed attempt. */
function notSentReason(error: unknown): unknown {
  return error instanceof NotSentError ? error.reason : error;
}

function hasLimits(limits: OrganizationLimits): boolean {
  return limits.requestsPerMinute !== null || limits.tokensPerMinute !== null || limits.concurrentRequests !== null || limits.tokenBudget !== null;
}

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
  private endedListener: (() => void) | undefined;
  /** The content relayed so far: its tokens are counted if the upstream reports none (a caller who left, a cut). */
  private readonly output = new StreamedTextCounter();

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
      return this.relayed(parts);
    }
    if (this.ended) return DONE;
    try {
      const read = await this.reads.next();
      if (read.done) {
        this.end();
        return DONE;
      }
      return this.relayed(read.value);
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

  private relayed(parts: ChatStreamPart[]): IteratorYieldResult<ChatStreamPart[]> {
    for (const part of parts) {
      if (part.content) this.output.add(part.content);
      for (const call of part.toolCalls ?? []) if (call.function?.arguments) this.output.add(call.function.arguments);
    }
    return { done: false, value: parts };
  }

  /** Called once the stream has ended and its attempt is recorded (at once, if it already has). */
  onEnded(listener: () => void): void {
    if (this.ended) listener();
    else this.endedListener = listener;
  }

  private end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.finish(this.upstream.metering, error, this.output);
    this.endedListener?.();
  }
}
