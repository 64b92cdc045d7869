import { NotFoundException } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { APIConnectionTimeoutError, APIError } from 'openai';
import { Environment, validateEnvironment } from '../config/environment';
import { LlmClientProvider } from './llm-client.provider';
import { LlmError, LlmErrorCode } from './llm.errors';
import { MetricsService } from '../metrics/metrics.service';
import { OrganizationPreferences, OrganizationsService } from '../organizations/organizations.service';
import { LlmService } from './llm.service';
import { ChatStreamEvent } from './llm.types';

/** A stand-in for the OpenAI SDK client: records calls, answers what each test gives it. */
function fakeClient() {
  return {
    chat: { completions: { create: jest.fn() } },
    embeddings: { create: jest.fn() },
    models: { list: jest.fn() },
  };
}

const ORG_ID = '6f1c2f9e-2a59-4c43-9d2b-3a4f6f1f0e11';

/** Organizations as the service sees them: preferences by id. */
function fakeOrganizations(preferences: Partial<OrganizationPreferences> = {}) {
  return {
    getPreferences: jest.fn(async (id: string) => {
      if (id !== ORG_ID) throw new NotFoundException({ code: 'ORGANIZATION_NOT_FOUND' });
      return { id, llmModel: 'gpt-4o', llmFallbackModel: 'claude-3-5-sonnet', ...preferences };
    }),
  };
}

function serviceWith(
  client: ReturnType<typeof fakeClient>,
  env: Record<string, string> = {},
  organizations = fakeOrganizations(),
): LlmService {
  const config = new ConfigService<Environment, true>(validateEnvironment({ LITELLM_API_KEY: 'sk-x', ...env }));
  return new LlmService(
    { client } as unknown as LlmClientProvider,
    config,
    organizations as unknown as OrganizationsService,
    new MetricsService(),
  );
}

async function* chunks(...items: object[]) {
  yield* items;
}

async function collect(events: AsyncGenerator<ChatStreamEvent>): Promise<ChatStreamEvent[]> {
  const all: ChatStreamEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

const messages = [{ role: 'user' as const, content: 'hi' }];

describe('LlmService', () => {
  describe('chatCompletion', () => {
    it('returns content, model and usage in the gateway shape', async () => {
      const client = fakeClient();
      client.chat.completions.create.mockResolvedValue({
        model: 'gpt-4o-2024-08-06',
        choices: [{ message: { content: 'hello' } }],
        usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
      });

      const result = await serviceWith(client).chatCompletion(messages, { model: 'gpt-4o', maxTokens: 5, temperature: 0 });

      expect(result).toEqual({
        content: 'hello',
        model: 'gpt-4o-2024-08-06',
        usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3 },
      });
      expect(client.chat.completions.create).toHaveBeenCalledWith(
        { model: 'gpt-4o', messages, temperature: 0, max_tokens: 5 },
        { signal: undefined },
      );
    });

    it('sends only role and content of each message, whatever else the objects carry', async () => {
      const client = fakeClient();
      client.chat.completions.create.mockResolvedValue({ model: 'm', choices: [], usage: undefined });
      const polluted = [{ role: 'user' as const, content: 'hi', api_base: 'http://evil' }];

      const result = await serviceWith(client).chatCompletion(polluted);

      expect(client.chat.completions.create.mock.calls[0][0].messages).toEqual([{ role: 'user', content: 'hi' }]);
      expect(result.usage).toEqual({ promptTokens: 0, completionTokens: 0, totalTokens: 0 });
    });

    it('uses DEFAULT_CHAT_MODEL when no model is given', async () => {
      const client = fakeClient();
      client.chat.completions.create.mockResolvedValue({ model: '', choices: [], usage: undefined });

      const result = await serviceWith(client, { DEFAULT_CHAT_MODEL: 'claude-3-5-sonnet' }).chatCompletion(messages);

      expect(client.chat.completions.create.mock.calls[0][0].model).toBe('claude-3-5-sonnet');
      expect(result.model).toBe('claude-3-5-sonnet');
    });

    it('throws SDK failures as LlmErrors', async () => {
      const client = fakeClient();
      client.chat.completions.create.mockRejectedValue(
        APIError.generate(429, { error: { message: 'slow' } }, undefined, new Headers({ 'retry-after': '2' })),
      );

      await expect(serviceWith(client).chatCompletion(messages)).rejects.toMatchObject({
        code: LlmErrorCode.UPSTREAM_RATE_LIMITED,
        retryAfter: '2',
      });
    });
  });

  describe('streamChatCompletion', () => {
    it('yields deltas, then model and usage, asking for usage in the stream', async () => {
      const client = fakeClient();
      client.chat.completions.create.mockResolvedValue(
        chunks(
          { model: 'gpt-4o', choices: [{ delta: { role: 'assistant', content: '' } }] },
          { model: 'gpt-4o', choices: [{ delta: { content: 'Hel' } }] },
          { model: 'gpt-4o', choices: [{ delta: { content: 'lo' }, finish_reason: 'stop' }] },
          { model: 'gpt-4o', choices: [], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } },
        ),
      );

      const events = await collect(serviceWith(client).streamChatCompletion(messages));

      expect(events).toEqual([
        { type: 'delta', content: 'Hel' },
        { type: 'delta', content: 'lo' },
        { type: 'done', model: 'gpt-4o', usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3 } },
      ]);
      expect(client.chat.completions.create.mock.calls[0][0]).toMatchObject({
        stream: true,
        stream_options: { include_usage: true },
      });
    });

    it('takes usage from a final chunk that still carries a choice', async () => {
      const client = fakeClient();
      client.chat.completions.create.mockResolvedValue(
        chunks({
          model: 'gpt-4o',
          choices: [{ delta: { content: 'x' } }],
          usage: { prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 },
        }),
      );

      const events = await collect(serviceWith(client).streamChatCompletion(messages));

      expect(events).toEqual([
        { type: 'delta', content: 'x' },
        { type: 'done', model: 'gpt-4o', usage: { promptTokens: 4, completionTokens: 5, totalTokens: 9 } },
      ]);
    });

    it('does not report an aborted stream as complete', async () => {
      const client = fakeClient();
      const abort = new AbortController();
      // Like the SDK's own stream: it stops quietly when its request is aborted.
      client.chat.completions.create.mockResolvedValue(
        (async function* () {
          yield { model: 'gpt-4o', choices: [{ delta: { content: 'par' } }] };
          abort.abort();
        })(),
      );

      const events = serviceWith(client).streamChatCompletion(messages, { signal: abort.signal });

      expect((await events.next()).value).toEqual({ type: 'delta', content: 'par' });
      await expect(events.next()).rejects.toMatchObject({ code: LlmErrorCode.REQUEST_ABORTED });
    });

    it('throws a failure in the middle of the stream as an LlmError', async () => {
      const client = fakeClient();
      client.chat.completions.create.mockResolvedValue(
        (async function* () {
          yield { model: 'gpt-4o', choices: [{ delta: { content: 'par' } }] };
          throw new APIError(undefined, { message: 'boom', code: '500' }, undefined, undefined);
        })(),
      );

      const events = serviceWith(client).streamChatCompletion(messages);

      expect(await events.next()).toEqual({ done: false, value: { type: 'delta', content: 'par' } });
      await expect(events.next()).rejects.toMatchObject({ code: LlmErrorCode.UPSTREAM_ERROR });
    });
  });

  describe('embeddings', () => {
    it('asks for floats, replaces newlines, and returns vectors in input order', async () => {
      const client = fakeClient();
      client.embeddings.create.mockResolvedValue({
        model: 'text-embedding-3-small',
        data: [
          { index: 1, embedding: [0.2, 0.2] },
          { index: 0, embedding: [0.1, 0.1] },
        ],
      });

      const result = await serviceWith(client).generateEmbeddings(['a\nb', 'c\r\nd']);

      expect(client.embeddings.create).toHaveBeenCalledWith({
        model: 'text-embedding-3-small',
        input: ['a b', 'c d'],
        encoding_format: 'float',
      });
      expect(result).toEqual({ embeddings: [[0.1, 0.1], [0.2, 0.2]], model: 'text-embedding-3-small', dimensions: 2 });
    });

    it('returns a single embedding for a single text', async () => {
      const client = fakeClient();
      client.embeddings.create.mockResolvedValue({ model: 'e', data: [{ index: 0, embedding: [1, 2, 3] }] });

      expect(await serviceWith(client).generateEmbedding('one', 'e')).toEqual({ embedding: [1, 2, 3], model: 'e', dimensions: 3 });
    });
  });

  describe('chatCompletionForOrg: the fallback rules', () => {
    const completion = (model: string) => ({
      model,
      choices: [{ message: { content: `from ${model}` } }],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
    });
    const failure = (status: number) => APIError.generate(status, { error: { message: `HTTP ${status}` } }, undefined, new Headers());

    /** A client whose answer depends on the model asked for: a status fails, anything else succeeds. */
    function clientAnswering(byModel: Record<string, number>) {
      const client = fakeClient();
      client.chat.completions.create.mockImplementation(async ({ model }: { model: string }) => {
        if (byModel[model]) throw failure(byModel[model]);
        return completion(model);
      });
      return client;
    }
    const modelsAsked = (client: ReturnType<typeof fakeClient>) =>
      client.chat.completions.create.mock.calls.map(([params]) => params.model);

    it("serves with the organization's model when it works", async () => {
      const client = clientAnswering({});

      const result = await serviceWith(client).chatCompletionForOrg(ORG_ID, messages);

      expect(result).toMatchObject({ content: 'from gpt-4o', model: 'gpt-4o', fallbackUsed: false });
      expect(result).not.toHaveProperty('fallbackReason');
      expect(modelsAsked(client)).toEqual(['gpt-4o']);
    });

    it.each([400, 401, 403, 404])('tries the fallback once when the primary fails with %i', async (status) => {
      const client = clientAnswering({ 'gpt-4o': status });

      const result = await serviceWith(client).chatCompletionForOrg(ORG_ID, messages);

      expect(result).toMatchObject({ content: 'from claude-3-5-sonnet', model: 'claude-3-5-sonnet', fallbackUsed: true });
      expect(result.fallbackReason).toEqual(expect.any(String));
      expect(modelsAsked(client)).toEqual(['gpt-4o', 'claude-3-5-sonnet']);
    });

    it.each([429, 500, 502, 503, 504, 408])('sends a retryable %i back without fallback or retry', async (status) => {
      const client = clientAnswering({ 'gpt-4o': status });

      await expect(serviceWith(client).chatCompletionForOrg(ORG_ID, messages)).rejects.toBeInstanceOf(LlmError);
      expect(modelsAsked(client)).toEqual(['gpt-4o']);
    });

    it('sends a connection failure or timeout back without fallback', async () => {
      const client = fakeClient();
      client.chat.completions.create.mockRejectedValue(new APIConnectionTimeoutError());

      await expect(serviceWith(client).chatCompletionForOrg(ORG_ID, messages)).rejects.toMatchObject({
        code: LlmErrorCode.UPSTREAM_TIMEOUT,
      });
      expect(client.chat.completions.create).toHaveBeenCalledTimes(1);
    });

    it('has nothing to fall back to when the fallback is null', async () => {
      const client = clientAnswering({ 'gpt-4o': 400 });
      const service = serviceWith(client, {}, fakeOrganizations({ llmFallbackModel: null }));

      await expect(service.chatCompletionForOrg(ORG_ID, messages)).rejects.toMatchObject({
        code: LlmErrorCode.UPSTREAM_BAD_REQUEST,
      });
      expect(modelsAsked(client)).toEqual(['gpt-4o']);
    });

    it('names both attempts when the fallback fails too', async () => {
      const client = clientAnswering({ 'gpt-4o': 404, 'claude-3-5-sonnet': 503 });

      const error = await serviceWith(client).chatCompletionForOrg(ORG_ID, messages).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(LlmError);
      expect((error as LlmError).code).toBe(LlmErrorCode.UPSTREAM_ERROR);
      expect((error as LlmError).message).toMatch(/Primary model gpt-4o failed \(MODEL_NOT_FOUND.*fallback model claude-3-5-sonnet failed too \(UPSTREAM_ERROR/);
      expect(modelsAsked(client)).toEqual(['gpt-4o', 'claude-3-5-sonnet']);
    });

    it("uses the request's model instead of the organization's, with the organization's fallback", async () => {
      const client = clientAnswering({ 'gpt-unknown': 400 });

      const result = await serviceWith(client).chatCompletionForOrg(ORG_ID, messages, { model: 'gpt-unknown' });

      expect(result).toMatchObject({ model: 'claude-3-5-sonnet', fallbackUsed: true });
      expect(modelsAsked(client)).toEqual(['gpt-unknown', 'claude-3-5-sonnet']);
    });

    it('sends nothing upstream for an unknown organization', async () => {
      const client = clientAnswering({});

      await expect(serviceWith(client).chatCompletionForOrg('00000000-0000-4000-8000-000000000000', messages)).rejects.toBeInstanceOf(
        NotFoundException,
      );
      expect(client.chat.completions.create).not.toHaveBeenCalled();
    });
  });

  describe('streamChatCompletionForOrg', () => {
    it('falls back when the primary stream is refused before its first event', async () => {
      const client = fakeClient();
      client.chat.completions.create.mockImplementation(async ({ model }: { model: string }) => {
        if (model === 'gpt-4o') throw APIError.generate(400, { error: { message: 'Invalid model name passed in model=gpt-4o' } }, undefined, new Headers());
        return chunks(
          { model, choices: [{ delta: { content: 'fine' } }] },
          { model, choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } },
        );
      });

      const stream = await serviceWith(client).streamChatCompletionForOrg(ORG_ID, messages);

      expect(stream.model).toBe('claude-3-5-sonnet');
      expect(stream.fallbackReason).toBe(LlmErrorCode.MODEL_NOT_FOUND);
      expect(await collect(stream.events)).toEqual([
        { type: 'delta', content: 'fine' },
        {
          type: 'done',
          model: 'claude-3-5-sonnet',
          usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2 },
          fallbackUsed: true,
        },
      ]);
    });

    it('does not fall back once the first event has arrived', async () => {
      const client = fakeClient();
      client.chat.completions.create.mockResolvedValue(
        (async function* () {
          yield { model: 'gpt-4o', choices: [{ delta: { content: 'par' } }] };
          throw APIError.generate(400, { error: { message: 'late failure' } }, undefined, new Headers());
        })(),
      );

      const stream = await serviceWith(client).streamChatCompletionForOrg(ORG_ID, messages);

      expect(stream.model).toBe('gpt-4o');
      expect(await stream.events.next()).toEqual({ done: false, value: { type: 'delta', content: 'par' } });
      await expect(stream.events.next()).rejects.toMatchObject({ code: LlmErrorCode.UPSTREAM_BAD_REQUEST });
      expect(client.chat.completions.create).toHaveBeenCalledTimes(1);
    });

    it('sends a retryable refusal back without fallback', async () => {
      const client = fakeClient();
      client.chat.completions.create.mockRejectedValue(APIError.generate(429, { error: { message: 'slow' } }, undefined, new Headers()));

      await expect(serviceWith(client).streamChatCompletionForOrg(ORG_ID, messages)).rejects.toMatchObject({
        code: LlmErrorCode.UPSTREAM_RATE_LIMITED,
      });
      expect(client.chat.completions.create).toHaveBeenCalledTimes(1);
    });
  });
});
