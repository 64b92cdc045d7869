import { Module } from '@nestjs/common';
import { LimitsModule } from '../limits/limits.module';
import { LiteLLMModule } from '../litellm/litellm.module';
import { OrganizationsModule } from '../organizations/organizations.module';
import { UsageModule } from '../usage/usage.module';
import { LlmService } from './llm.service';

/** The pipeline every call to a model goes through (LlmService), for the API and for any other module. */
@Module({
  imports: [LiteLLMModule, OrganizationsModule, UsageModule, LimitsModule],
  providers: [LlmService],
  exports: [LlmService],
})
export class LlmModule {}
