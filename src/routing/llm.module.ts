import { Module } from '@nestjs/common';
import { LiteLLMModule } from '../litellm/litellm.module';
import { OrganizationsModule } from '../organizations/organizations.module';
import { LlmService } from './llm.service';

/** The pipeline every call to a model goes through (LlmService), for the API and for any other module. */
@Module({
  imports: [LiteLLMModule, OrganizationsModule],
  providers: [LlmService],
  exports: [LlmService],
})
export class LlmModule {}
