import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { LiteLLMClient } from './litellm.client';
import { LiteLLMHealthIndicator } from './litellm.health';
import { LlmClientProvider } from './llm-client.provider';
import { ModelCatalogService } from './model-catalog.service';

/** Everything that talks to LiteLLM; nothing outside this module does. */
@Module({
  imports: [TerminusModule],
  providers: [LlmClientProvider, LiteLLMClient, ModelCatalogService, LiteLLMHealthIndicator],
  exports: [LlmClientProvider, LiteLLMClient, ModelCatalogService, LiteLLMHealthIndicator],
})
export class LiteLLMModule {}
