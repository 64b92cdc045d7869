import { Module } from '@nestjs/common';
import { LlmClientProvider } from './llm-client.provider';
import { ModelCatalogService } from './model-catalog.service';

/**
 * The connection to LiteLLM and its model list, on their own so that OrganizationsModule can check
 * models without depending on LlmModule, which depends on OrganizationsModule for preferences.
 */
@Module({
  providers: [LlmClientProvider, ModelCatalogService],
  exports: [LlmClientProvider, ModelCatalogService],
})
export class LlmClientModule {}
