import { ConfigService } from '@nestjs/config';
import { Environment, validateEnvironment } from '../config/environment';
import { LlmClientProvider } from './llm-client.provider';

describe('LlmClientProvider', () => {
  afterEach(() => {
    delete process.env.OPENAI_LOG;
  });

  it('keeps the SDK at warn whatever OPENAI_LOG says: its debug output holds prompts', () => {
    process.env.OPENAI_LOG = 'debug';
    const config = new ConfigService<Environment, true>(validateEnvironment({ LITELLM_API_KEY: 'sk-x' }));

    const { client } = new LlmClientProvider(config);

    expect(client.logLevel).toBe('warn');
  });
});
