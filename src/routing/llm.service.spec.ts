import { ConfigService } from '@nestjs/config';
import { ErrorCode, GatewayError } from '../common/errors/gateway-error';
import { Environment, validateEnvironment } from '../config/environment';
import { LiteLLMClient } from '../litellm/litellm.client';
import { ModelCatalogService } from '../litellm/model-catalog.service';
import { LimitsUnavailableError } from '../limits/limits.errors';
import { LimitsStore } from '../limits/limits.store';
import { MemoryLimitsStore } from '../limits/memory-limits.store';
import { UsageEntry, UsageLedger } from '../usage/usage-ledger.service';
import { UsageService } from '../usage/usage.service';
import { ChatStreamPart, UpstreamChatStream } from '../litellm/litellm.types';
import { MetricsService } from '../metrics/metrics.service';
import { OrganizationPreferences, OrganizationsService } from '../organizations/organizations.service';
import { CallContext, LlmService } from './llm.service';

const ORG_ID = '6f1c2f9e-2a59-4c43-9d2b-3a4f6f1f0e11';
const context: CallContext = { requestId: 'req-1', route: '/v1/chat' };
const request = { messages: [{ role: 'user' as const, content: 'hi' }] };

/** A stand-in for LiteLLMClient: records the models asked for, answers what each test scripts. */
function fakeLiteLLM() {
  return { chat: jest.fn(), streamChat: jest.fn(), embed: jest.fn() };
}

function answer(content = 'hello') {
  return { content, finishReason: 'stop', upstreamModel: 'provider-model-1', usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3 } };
}

function upstreamStream(...reads: ChatStreamPart[][]): UpstreamChatStream & { returned: () => boolean } {
  let returned = false;
  const metering = {};
  return {
    metering,
    returned: () => returned,
    reads: async function* () {
      try {
        yield* reads;
      } finally {
        returned = true;
      }
    },
  };
}

function fakeOrganizations(preferences: Partial<OrganizationPreferences> = {}) {
  return {
    getPreferences: jest.fn(async (id: string) => {
      if (id !== ORG_ID) throw new GatewayError('ORGANIZATION_NOT_FOUND', 'no such organization');
      return { id, llmModel: 'gpt-4o', llmFallbackModel: 'claude-3-5-sonnet', ...preferences };
    }),
  };
}

/**
 * Like LiteLLMClient with the SDK under it: takes the call at once, sends it only when its gate opens (a failed
 * gate rejects with NotSentError, which it passes on), and keeps the models it sent.
 */
function gatedLiteLLM() {
  const sent: string[] = [];
  const send = async (call: { model: string }, _signal: AbortSignal | undefined, sendWhen: Promise<void>) => {
    await sendWhen;
    sent.push(call.model);
  };
  return {
    sent,
    chat: jest.fn(async (call: { model: string }, signal: AbortSignal | undefined, sendWhen: Promise<void>) => {
      await send(call, signal, sendWhen);
      return answer();
    }),
    streamChat: jest.fn(async (call: { model: string }, signal: AbortSignal | undefined, sendWhen: Promise<void>) => {
      await send(call, signal, sendWhen);
      return upstreamStream([{ content: 'hi' }]);
    }),
    embed: jest.fn(),
  };
}

const ONE_REQUEST_PER_MINUTE = { requestsPerMinute: 1, tokensPerMinute: null, concurrentRequests: null, tokenBudget: null, budgetPeriod: 'day' as const };

function pipeline(
  litellm: Pick<ReturnType<typeof fakeLiteLLM>, 'chat' | 'streamChat' | 'embed'>,
  env: Record<string, string> = {},
  organizations = fakeOrganizations(),
  limitsStore?: LimitsStore,
) {
  const config = new ConfigService<Environment, true>(validateEnvironment({ LITELLM_API_KEY: 'sk-x', ...env }));
  const metrics = new MetricsService();
  const records: UsageEntry[] = [];
  const ledger = { record: (entry: UsageEntry) => records.push(entry) } as unknown as UsageLedger;
  const catalog = { metricLabel: (model: string) => model } as unknown as ModelCatalogService;
  const limits = limitsStore ?? new MemoryLimitsStore(metrics, 600_000);
  const usage = { tokensBetween: async () => 0 } as unknown as UsageService;
  const service = new LlmService(
    litellm as unknown as LiteLLMClient,
    organizations as unknown as OrganizationsService,
    ledger,
    usage,
    limits,
    catalog,
    metrics,
    config,
  );
  return { service, metrics, records };
}

const failure = (code: ErrorCode) => new GatewayError(code, `${code} happened`);

describe('LlmService (the pipeline)', () => {
  describe('plain calls', () => {
    it('asks for DEFAULT_CHAT_MODEL when no model is named, and reports what served', async () => {
      const litellm = fakeLiteLLM();
      litellm.chat.mockResolvedValue(answer());
      const { service } = pipeline(litellm, { DEFAULT_CHAT_MODEL: 'my-default' });

      const result = await service.chatCompletion(request, context);

      expect(litellm.chat).toHaveBeenCalledWith({ ...request, model: 'my-default' }, undefined, expect.any(Promise));
      expect(result).toEqual({
        callId: expect.any(String),
        content: 'hello',
        model: 'my-default',
        upstreamModel: 'provider-model-1',
        usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3 },
        finishReason: 'stop',
        rateLimitHeaders: {},
      });
    });

    it('never falls back: a plain call has no fallback model', async () => {
      const litellm = fakeLiteLLM();
      litellm.chat.mockRejectedValue(failure('MODEL_NOT_FOUND'));
      const { service } = pipeline(litellm);

      await expect(service.chatCompletion({ ...request, model: 'gpt-9' }, context)).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' });
      expect(litellm.chat).toHaveBeenCalledTimes(1);
    });

    it('reports zeros when the upstream reported no usage', async () => {
      const litellm = fakeLiteLLM();
      litellm.chat.mockResolvedValue({ content: 'x' });
      const { service } = pipeline(litellm);

      expect((await service.chatCompletion(request, context)).usage).toEqual({ promptTokens: 0, completionTokens: 0, totalTokens: 0 });
    });

    it('embeds with DEFAULT_EMBEDDING_MODEL and gives the dimensions', async () => {
      const litellm = fakeLiteLLM();
      litellm.embed.mockResolvedValue({ embeddings: [[0.1, 0.2], [0.3, 0.4]] });
      const { service } = pipeline(litellm);

      const result = await service.generateEmbeddings({ input: ['a', 'b'] }, context);

      expect(litellm.embed).toHaveBeenCalledWith({ model: 'text-embedding-3-small', input: ['a', 'b'], dimensions: undefined }, undefined, expect.any(Promise));
      expect(result).toMatchObject({ embeddings: [[0.1, 0.2], [0.3, 0.4]], model: 'text-embedding-3-small', dimensions: 2 });
    });
  });

  describe('organization calls: the fallback policy', () => {
    it("serves with the organization's model when it works", async () => {
      const litellm = fakeLiteLLM();
      litellm.chat.mockResolvedValue(answer());
      const { service } = pipeline(litellm);

      const result = await service.chatCompletionForOrg(ORG_ID, request, context);

      expect(litellm.chat.mock.calls.map(([call]) => call.model)).toEqual(['gpt-4o']);
      expect(result).toMatchObject({ model: 'gpt-4o' });
      expect(result.fallbackReason).toBeUndefined();
    });

    it.each<ErrorCode>(['MODEL_NOT_FOUND', 'UPSTREAM_BAD_REQUEST', 'UPSTREAM_AUTH_FAILED'])('tries the fallback once after %s', async (code) => {
      const litellm = fakeLiteLLM();
      litellm.chat.mockRejectedValueOnce(failure(code)).mockResolvedValueOnce(answer('from fallback'));
      const { service, metrics } = pipeline(litellm);

      const result = await service.chatCompletionForOrg(ORG_ID, request, context);

      expect(litellm.chat.mock.calls.map(([call]) => call.model)).toEqual(['gpt-4o', 'claude-3-5-sonnet']);
      expect(result).toMatchObject({ content: 'from fallback', model: 'claude-3-5-sonnet', fallbackReason: code });
      expect((await metrics.fallbacks.get()).values).toEqual([{ labels: { reason: code }, value: 1 }]);
    });

    it.each<ErrorCode>(['UPSTREAM_RATE_LIMITED', 'UPSTREAM_ERROR', 'UPSTREAM_TIMEOUT', 'UPSTREAM_UNAVAILABLE', 'UPSTREAM_INVALID_RESPONSE', 'REQUEST_ABORTED'])(
      'sends %s back as it is, without fallback',
      async (code) => {
        const litellm = fakeLiteLLM();
        litellm.chat.mockRejectedValue(failure(code));
        const { service } = pipeline(litellm);

        await expect(service.chatCompletionForOrg(ORG_ID, request, context)).rejects.toMatchObject({ code, message: `${code} happened` });
        expect(litellm.chat).toHaveBeenCalledTimes(1);
      },
    );

    it('does not re-send a prompt refused by a content policy, unless FALLBACK_ON_CONTENT_POLICY=true', async () => {
      const litellm = fakeLiteLLM();
      litellm.chat.mockRejectedValueOnce(failure('UPSTREAM_CONTENT_POLICY'));
      await expect(pipeline(litellm).service.chatCompletionForOrg(ORG_ID, request, context)).rejects.toMatchObject({
        code: 'UPSTREAM_CONTENT_POLICY',
      });
      expect(litellm.chat).toHaveBeenCalledTimes(1);

      const allowed = fakeLiteLLM();
      allowed.chat.mockRejectedValueOnce(failure('UPSTREAM_CONTENT_POLICY')).mockResolvedValueOnce(answer());
      const result = await pipeline(allowed, { FALLBACK_ON_CONTENT_POLICY: 'true' }).service.chatCompletionForOrg(ORG_ID, request, context);
      expect(result).toMatchObject({ model: 'claude-3-5-sonnet', fallbackReason: 'UPSTREAM_CONTENT_POLICY' });
    });

    it('has nothing to fall back to when the fallback is null or equals the model asked for', async () => {
      for (const preferences of [{ llmFallbackModel: null }, { llmModel: 'claude-3-5-sonnet' }]) {
        const litellm = fakeLiteLLM();
        litellm.chat.mockRejectedValue(failure('MODEL_NOT_FOUND'));
        const { service } = pipeline(litellm, {}, fakeOrganizations(preferences));

        await expect(service.chatCompletionForOrg(ORG_ID, request, context)).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' });
        expect(litellm.chat).toHaveBeenCalledTimes(1);
      }
    });

    it('names both attempts when the fallback fails too, with the second one\'s code and headers', async () => {
      const litellm = fakeLiteLLM();
      litellm.chat
        .mockRejectedValueOnce(failure('MODEL_NOT_FOUND'))
        .mockRejectedValueOnce(new GatewayError('UPSTREAM_RATE_LIMITED', 'slow down', { 'retry-after': '9' }));
      const { service } = pipeline(litellm);

      const error = await service.chatCompletionForOrg(ORG_ID, request, context).catch((e: unknown) => e);

      expect(error).toMatchObject({ code: 'UPSTREAM_RATE_LIMITED', headers: { 'retry-after': '9' } });
      expect((error as Error).message).toMatch(/gpt-4o failed \(MODEL_NOT_FOUND.*claude-3-5-sonnet failed too \(UPSTREAM_RATE_LIMITED/);
    });

    it("uses the request's model instead of the organization's, with the organization's fallback", async () => {
      const litellm = fakeLiteLLM();
      litellm.chat.mockRejectedValueOnce(failure('MODEL_NOT_FOUND')).mockResolvedValueOnce(answer());
      const { service } = pipeline(litellm);

      await service.chatCompletionForOrg(ORG_ID, { ...request, model: 'gpt-4o-mini' }, context);

      expect(litellm.chat.mock.calls.map(([call]) => call.model)).toEqual(['gpt-4o-mini', 'claude-3-5-sonnet']);
    });

    it('sends nothing upstream for an unknown organization', async () => {
      const litellm = fakeLiteLLM();
      const { service } = pipeline(litellm);

      await expect(service.chatCompletionForOrg('00000000-0000-4000-8000-000000000000', request, context)).rejects.toMatchObject({
        code: 'ORGANIZATION_NOT_FOUND',
      });
      expect(litellm.chat).not.toHaveBeenCalled();
    });
  });

  describe('admission: checked while the request is built, sent only once admitted', () => {
    it('answers a refused call with the 429, sends nothing and records no attempt', async () => {
      const litellm = gatedLiteLLM();
      const { service, records } = pipeline(litellm, {}, fakeOrganizations({ limits: ONE_REQUEST_PER_MINUTE }));

      await service.chatCompletionForOrg(ORG_ID, request, context);
      const refused = service.chatCompletionForOrg(ORG_ID, request, context);

      await expect(refused).rejects.toBeInstanceOf(GatewayError);
      await expect(refused).rejects.toMatchObject({ code: 'RATE_LIMITED', headers: { 'retry-after': expect.any(String) } });
      expect(litellm.chat).toHaveBeenCalledTimes(2);
      expect(litellm.sent).toEqual(['gpt-4o']);
      expect(records).toHaveLength(1);
    });

    it('answers 503 LIMITS_UNAVAILABLE when the limits cannot be checked and LIMITS_FAIL_MODE=closed, sending nothing', async () => {
      const litellm = gatedLiteLLM();
      const store = new MemoryLimitsStore(new MetricsService(), 600_000);
      jest.spyOn(store, 'admit').mockRejectedValue(new LimitsUnavailableError('Redis admit failed'));
      const { service, records } = pipeline(litellm, { LIMITS_FAIL_MODE: 'closed' }, fakeOrganizations({ limits: ONE_REQUEST_PER_MINUTE }), store);

      await expect(service.chatCompletionForOrg(ORG_ID, request, context)).rejects.toMatchObject({ code: 'LIMITS_UNAVAILABLE' });
      await expect(service.streamChatCompletionForOrg(ORG_ID, request, context)).rejects.toMatchObject({ code: 'LIMITS_UNAVAILABLE' });
      expect(litellm.sent).toEqual([]);
      expect(records).toHaveLength(0);
    });

    it('refuses a stream the same way', async () => {
      const litellm = gatedLiteLLM();
      const { service, records } = pipeline(litellm, {}, fakeOrganizations({ limits: ONE_REQUEST_PER_MINUTE }));
      await service.streamChatCompletionForOrg(ORG_ID, request, context);

      await expect(service.streamChatCompletionForOrg(ORG_ID, request, context)).rejects.toMatchObject({ code: 'RATE_LIMITED' });
      expect(litellm.sent).toEqual(['gpt-4o']);
      expect(records).toHaveLength(0); // the first stream is still open: nothing is recorded before it ends
    });

    it('hands the call to the client while the admission is out, and releases the reservation once the call ends', async () => {
      const litellm = gatedLiteLLM();
      const metrics = new MetricsService();
      const store = new MemoryLimitsStore(metrics, 600_000);
      let answerAdmission!: () => void;
      const admitted = new Promise<void>((resolve) => (answerAdmission = resolve));
      const admit = store.admit.bind(store);
      jest.spyOn(store, 'admit').mockImplementation(async (admission) => {
        await admitted;
        return admit(admission);
      });
      const finish = jest.spyOn(store, 'finish');
      const limits = { ...ONE_REQUEST_PER_MINUTE, concurrentRequests: 1 };
      const { service } = pipeline(litellm, {}, fakeOrganizations({ limits }), store);

      const call = service.chatCompletionForOrg(ORG_ID, request, context);
      await new Promise((resolve) => setImmediate(resolve));
      expect(litellm.chat).toHaveBeenCalledTimes(1);
      expect(litellm.sent).toEqual([]);
      answerAdmission();
      await call;
      expect(litellm.sent).toEqual(['gpt-4o']);
      await new Promise((resolve) => setImmediate(resolve));
      expect(finish).toHaveBeenCalledTimes(1);
    });
  });

  describe('streams', () => {
    const collect = async (reads: AsyncIterable<ChatStreamPart[]>) => {
      const all: ChatStreamPart[] = [];
      for await (const parts of reads) all.push(...parts);
      return all;
    };

    it('relays every read, then sums up the model, the usage and the finish reason', async () => {
      const litellm = fakeLiteLLM();
      const upstream = upstreamStream([{ content: 'a' }], [{ content: 'b' }, { finishReason: 'stop' }]);
      litellm.streamChat.mockImplementation(async () => {
        Object.assign(upstream.metering, { upstreamModel: 'gpt-4o-2024', usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3 }, finishReason: 'stop' });
        return upstream;
      });
      const { service } = pipeline(litellm);

      const stream = await service.streamChatCompletion(request, context);

      expect(await collect(stream.reads)).toEqual([{ content: 'a' }, { content: 'b' }, { finishReason: 'stop' }]);
      expect(stream.summary()).toEqual({
        model: 'gpt-4o',
        upstreamModel: 'gpt-4o-2024',
        usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3 },
        finishReason: 'stop',
      });
    });

    it('falls back when the primary stream fails before its first read', async () => {
      const litellm = fakeLiteLLM();
      const refused = {
        metering: {},
        reads: async function* (): AsyncGenerator<ChatStreamPart[]> {
          throw failure('UPSTREAM_BAD_REQUEST');
        },
      };
      litellm.streamChat.mockResolvedValueOnce(refused).mockResolvedValueOnce(upstreamStream([{ content: 'from fallback' }]));
      const { service } = pipeline(litellm);

      const stream = await service.streamChatCompletionForOrg(ORG_ID, request, context);

      expect(stream).toMatchObject({ model: 'claude-3-5-sonnet', fallbackReason: 'UPSTREAM_BAD_REQUEST' });
      expect(await collect(stream.reads)).toEqual([{ content: 'from fallback' }]);
    });

    it('does not fall back once the first read has arrived: the failure reaches the caller', async () => {
      const litellm = fakeLiteLLM();
      const breaking = {
        metering: {},
        reads: async function* () {
          yield [{ content: 'partial' }];
          throw failure('UPSTREAM_BAD_REQUEST');
        },
      };
      litellm.streamChat.mockResolvedValue(breaking);
      const { service } = pipeline(litellm);

      const stream = await service.streamChatCompletionForOrg(ORG_ID, request, context);

      await expect(collect(stream.reads)).rejects.toMatchObject({ code: 'UPSTREAM_BAD_REQUEST' });
      expect(litellm.streamChat).toHaveBeenCalledTimes(1);
    });

    it('ends the upstream stream when the caller stops reading, even before the first part was taken', async () => {
      const litellm = fakeLiteLLM();
      const upstream = upstreamStream([{ content: 'a' }], [{ content: 'b' }]);
      litellm.streamChat.mockResolvedValue(upstream);
      const { service } = pipeline(litellm);

      const stream = await service.streamChatCompletion(request, context);
      await stream.reads.return?.();

      expect(upstream.returned()).toBe(true);
    });
  });

  describe('completion: one usage record per attempt, however it ends', () => {
    const summary = (records: UsageEntry[]) =>
      records.map(({ attempt, model, outcome, fallbackReason, promptTokens, completionTokens, tokensEstimated }) => ({
        attempt,
        model,
        outcome,
        fallbackReason,
        promptTokens,
        completionTokens,
        tokensEstimated,
      }));
    const reported = { promptTokens: 7, completionTokens: 5, totalTokens: 12 };

    it('records a plain call with the usage the upstream reported, its call id, route and caller', async () => {
      const litellm = fakeLiteLLM();
      litellm.chat.mockResolvedValue({ content: 'hi', usage: reported, costUsd: 0.0012, timeToFirstByteMs: 12.4 });
      const { service, records } = pipeline(litellm);

      await service.chatCompletion(request, { ...context, callerKeyId: 'abcd1234' });

      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({
        attempt: 1,
        requestId: 'req-1',
        route: '/v1/chat',
        operation: 'chat',
        callerKeyId: 'abcd1234',
        organizationId: null,
        model: 'gpt-4o',
        outcome: 'ok',
        promptTokens: 7,
        completionTokens: 5,
        totalTokens: 12,
        tokensEstimated: false,
        costUsd: 0.0012,
        timeToFirstByteMs: 12,
      });
      expect(records[0].callId).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('records both attempts of a fallback call under one call id, the first with its error and no tokens', async () => {
      const litellm = fakeLiteLLM();
      litellm.chat.mockRejectedValueOnce(failure('MODEL_NOT_FOUND')).mockResolvedValueOnce({ content: 'hi', usage: reported });
      const { service, records } = pipeline(litellm);

      await service.chatCompletionForOrg(ORG_ID, request, context);

      expect(summary(records)).toEqual([
        { attempt: 1, model: 'gpt-4o', outcome: 'MODEL_NOT_FOUND', fallbackReason: null, promptTokens: 0, completionTokens: 0, tokensEstimated: false },
        { attempt: 2, model: 'claude-3-5-sonnet', outcome: 'ok', fallbackReason: 'MODEL_NOT_FOUND', promptTokens: 7, completionTokens: 5, tokensEstimated: false },
      ]);
      expect(records[0].callId).toBe(records[1].callId);
      expect(records.every((record) => record.organizationId === ORG_ID)).toBe(true);
    });

    it('counts the tokens itself, and says so, when an answer comes without usage', async () => {
      const litellm = fakeLiteLLM();
      litellm.chat.mockResolvedValue({ content: 'Hello there, how are you today?' });
      const { service, records } = pipeline(litellm);

      await service.chatCompletion(request, context);

      expect(records[0]).toMatchObject({ outcome: 'ok', tokensEstimated: true, completionTokens: 8 });
      expect(records[0].promptTokens).toBeGreaterThan(0);
    });

    it('records a stream once it has ended, with its reported usage', async () => {
      const litellm = fakeLiteLLM();
      const upstream = upstreamStream([{ content: 'a' }], [{ finishReason: 'stop' }]);
      litellm.streamChat.mockImplementation(async () => {
        Object.assign(upstream.metering, { usage: reported, finishReason: 'stop' });
        return upstream;
      });
      const { service, records } = pipeline(litellm);

      const stream = await service.streamChatCompletion(request, context);
      expect(records).toHaveLength(0);
      for await (const _ of stream.reads);

      expect(summary(records)).toEqual([
        { attempt: 1, model: 'gpt-4o', outcome: 'ok', fallbackReason: null, promptTokens: 7, completionTokens: 5, tokensEstimated: false },
      ]);
      expect(records[0].operation).toBe('chat_stream');
    });

    it('records a stream the caller left as aborted_by_caller, with the prompt and the streamed text counted', async () => {
      const litellm = fakeLiteLLM();
      litellm.streamChat.mockResolvedValue(upstreamStream([{ content: 'One two three four' }], [{ content: ' five six' }]));
      const { service, records } = pipeline(litellm);

      const stream = await service.streamChatCompletion(request, context);
      await stream.reads.next();
      await stream.reads.return?.();
      await stream.reads.return?.(); // twice: still one record

      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ outcome: 'aborted_by_caller', tokensEstimated: true, completionTokens: 4 });
      expect(records[0].promptTokens).toBeGreaterThan(0);
    });

    it("records a stream ended by the gateway's own reason (shutdown) under that reason", async () => {
      const litellm = fakeLiteLLM();
      litellm.streamChat.mockResolvedValue(upstreamStream([{ content: 'a' }], [{ content: 'b' }]));
      const { service, records } = pipeline(litellm);
      const abort = new AbortController();

      const stream = await service.streamChatCompletion(request, { ...context, signal: abort.signal });
      abort.abort(new GatewayError('SHUTTING_DOWN', 'shutting down'));
      await stream.reads.return?.();

      expect(records.map((record) => record.outcome)).toEqual(['SHUTTING_DOWN']);
    });

    it('records a stream the upstream cut as truncated, counting what came', async () => {
      const litellm = fakeLiteLLM();
      litellm.streamChat.mockResolvedValue({
        metering: {},
        reads: async function* () {
          yield [{ content: 'Half of it' }];
          throw failure('UPSTREAM_STREAM_TRUNCATED');
        },
      });
      const { service, records } = pipeline(litellm);

      const stream = await service.streamChatCompletion(request, context);
      await expect((async () => { for await (const _ of stream.reads); })()).rejects.toMatchObject({ code: 'UPSTREAM_STREAM_TRUNCATED' });

      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ outcome: 'truncated', tokensEstimated: true, completionTokens: 3 });
    });

    it('records both attempts of a stream refused before its first read and served by the fallback', async () => {
      const litellm = fakeLiteLLM();
      const refused = {
        metering: {},
        reads: async function* (): AsyncGenerator<ChatStreamPart[]> {
          throw failure('UPSTREAM_BAD_REQUEST');
        },
      };
      litellm.streamChat.mockResolvedValueOnce(refused).mockResolvedValueOnce(upstreamStream([{ content: 'x' }]));
      const { service, records } = pipeline(litellm);

      const stream = await service.streamChatCompletionForOrg(ORG_ID, request, context);
      for await (const _ of stream.reads);

      expect(records.map(({ attempt, outcome, tokensEstimated }) => ({ attempt, outcome, tokensEstimated }))).toEqual([
        { attempt: 1, outcome: 'UPSTREAM_BAD_REQUEST', tokensEstimated: false },
        { attempt: 2, outcome: 'ok', tokensEstimated: true },
      ]);
    });

    it('records an embeddings call, and a failure with its code', async () => {
      const litellm = fakeLiteLLM();
      litellm.embed.mockResolvedValueOnce({ embeddings: [[0.1]], usage: { promptTokens: 3, completionTokens: 0, totalTokens: 3 } });
      litellm.embed.mockRejectedValueOnce(failure('UPSTREAM_TIMEOUT'));
      const { service, records } = pipeline(litellm);

      await service.generateEmbeddings({ input: ['a b c'] }, context);
      await expect(service.generateEmbeddings({ input: ['a'] }, context)).rejects.toMatchObject({ code: 'UPSTREAM_TIMEOUT' });

      expect(records.map(({ operation, outcome, promptTokens }) => ({ operation, outcome, promptTokens }))).toEqual([
        { operation: 'embeddings', outcome: 'ok', promptTokens: 3 },
        { operation: 'embeddings', outcome: 'UPSTREAM_TIMEOUT', promptTokens: 0 },
      ]);
    });
  });
});
