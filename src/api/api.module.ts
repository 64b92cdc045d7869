import { Module } from '@nestjs/common';
import { LimitsModule } from '../limits/limits.module';
import { LiteLLMModule } from '../litellm/litellm.module';
import { OrganizationsModule } from '../organizations/organizations.module';
import { LlmModule } from '../routing/llm.module';
import { UsageModule } from '../usage/usage.module';
import { ChatResponder } from './chat-responder';
import { LimitsController } from './limits.controller';
import { LlmController } from './llm.controller';
import { OpenAiController } from './openai.controller';
import { UsageController } from './usage.controller';

/** The model routes: thin controllers over the pipeline (LlmModule), and the responder they share. */
@Module({
  imports: [LlmModule, LiteLLMModule, OrganizationsModule, UsageModule, LimitsModule],
  controllers: [LlmController, OpenAiController, UsageController, LimitsController],
  providers: [ChatResponder],
})
export class ApiModule {}
