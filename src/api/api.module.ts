import { Module } from '@nestjs/common';
import { LiteLLMModule } from '../litellm/litellm.module';
import { LlmModule } from '../routing/llm.module';
import { ChatResponder } from './chat-responder';
import { LlmController } from './llm.controller';

/** The model routes: thin controllers over the pipeline (LlmModule), and the responder they share. */
@Module({
  imports: [LlmModule, LiteLLMModule],
  controllers: [LlmController],
  providers: [ChatResponder],
})
export class ApiModule {}
