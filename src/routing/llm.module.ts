import { Module } from '@nestjs/common';
import { LiteLLMModule } from '../litellm/litellm.module';
import { OrganizationsModule } from '../organizations/organizations.module';
import { UsageModule } from '../usage/usage.module';
import { LlmService } from './llm.service';

/** The pipeline every call to a model goes through (LlmService), for the API and for any other module. */
@Module({
  imports: [LiteLLMModule, OrganizationsModule, UsageModule],
  providers: [LlmService],
  exports: [LlmService],
})
export class LlmModule {}
