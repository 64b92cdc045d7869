import { ConfigService } from '@nestjs/config';
import { APIError } from 'openai';
import { Environment, validateEnvironment } from '../config/environment';
import { LlmClientProvider } from './llm-client.provider';
import { GatewayError } from '../common/errors/gateway-error';
import { ModelCatalogService } from './model-catalog.service';

async function* models(...ids: string[]) {
  yield* ids.map((id) => ({ id }));
}

function catalogWith(list: jest.Mock, env: Record<string, string> = {}): ModelCatalogService {
  const config = new ConfigService<Environment, true>(validateEnvironment({ LITELLM_API_KEY: 'sk-x', ...env }));
  return new ModelCatalogService({ client: { models: { list } } } as unknown as LlmClientProvider, config);
}

describe('ModelCatalogService', () => {
  it('caches the list and shares one request between concurrent callers', async () => {
    const list = jest.fn(() => models('gpt-4o', 'claude-3-5-sonnet'));
    const catalog = catalogWith(list);

    const [first, second] = await Promise.all([catalog.listModels(), catalog.listModels()]);
    const third = await catalog.listModels();

    expect(first).toEqual(['claude-3-5-sonnet', 'gpt-4o']);
    expect(second).toEqual(first);
    expect(third).toEqual(first);
    expect(list).toHaveBeenCalledTimes(1);
  });

  it('leaves embedding models out of the chat models', async () => {
    const list = jest.fn(async function* () {
      yield { id: 'gpt-4o', mode: 'chat' };
      yield { id: 'text-embedding-3-small', mode: 'embedding' };
      yield { id: 'claude-3-5-sonnet' };
    });
    const catalog = catalogWith(list);

    expect(await catalog.listModels()).toEqual(['claude-3-5-sonnet', 'gpt-4o', 'text-embedding-3-small']);
    expect(await catalog.listChatModels()).toEqual(['claude-3-5-sonnet', 'gpt-4o']);
  });

  it('does not cache a failure', async () => {
    const list = jest
      .fn()
      .mockImplementationOnce(() => {
        throw APIError.generate(503, { error: { message: 'down' } }, undefined, new Headers());
      })
      .mockImplementation(() => models('gpt-4o'));
    const catalog = catalogWith(list);

    await expect(catalog.listModels()).rejects.toBeInstanceOf(GatewayError);
    expect(await catalog.listModels()).toEqual(['gpt-4o']);
  });

  it('asks again once the TTL has passed', async () => {
    const list = jest.fn(() => models('gpt-4o'));
    const catalog = catalogWith(list, { MODELS_CACHE_TTL_MS: '0' });

    await catalog.listModels();
    await catalog.listModels();

    expect(list).toHaveBeenCalledTimes(2);
  });
});
