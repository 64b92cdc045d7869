import { ConfigService } from '@nestjs/config';
import { APIError } from 'openai';
import { Environment, validateEnvironment } from '../config/environment';
import { LlmClientProvider } from './llm-client.provider';
import { LlmError, LlmErrorCode } from './llm.errors';
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

function serviceWith(client: ReturnType<typeof fakeClient>, env: Record<string, string> = {}): LlmService {
  const config = new ConfigService<Environment, true>(validateEnvironment({ LITELLM_API_KEY: 'sk-x', ...env }));
  return new LlmService({ client } as unknown as LlmClientProvider, config);
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

  describe('listModels', () => {
    it('caches the list and shares one request between concurrent callers', async () => {
      const client = fakeClient();
      client.models.list.mockImplementation(() => chunks({ id: 'gpt-4o' }, { id: 'claude-3-5-sonnet' }));
      const service = serviceWith(client);

      const [first, second] = await Promise.all([service.listModels(), service.listModels()]);
      const third = await service.listModels();

      expect(first).toEqual(['claude-3-5-sonnet', 'gpt-4o']);
      expect(second).toEqual(first);
      expect(third).toEqual(first);
      expect(client.models.list).toHaveBeenCalledTimes(1);
    });

    it('does not cache a failure', async () => {
      const client = fakeClient();
      client.models.list
        .mockImplementationOnce(() => {
          throw APIError.generate(503, { error: { message: 'down' } }, undefined, new Headers());
        })
        .mockImplementation(() => chunks({ id: 'gpt-4o' }));
      const service = serviceWith(client);

      await expect(service.listModels()).rejects.toBeInstanceOf(LlmError);
      expect(await service.listModels()).toEqual(['gpt-4o']);
    });

    it('asks again once the TTL has passed', async () => {
      const client = fakeClient();
      client.models.list.mockImplementation(() => chunks({ id: 'gpt-4o' }));
      const service = serviceWith(client, { MODELS_CACHE_TTL_MS: '0' });

      await service.listModels();
      await service.listModels();

      expect(client.models.list).toHaveBeenCalledTimes(2);
    });
  });
});
