import { Module } from '@nestjs/common';
import { LlmClientProvider } from './llm-client.provider';
import { LlmController } from './llm.controller';
import { LlmService } from './llm.service';

@Module({
  controllers: [LlmController],
  providers: [LlmClientProvider, LlmService],
  exports: [LlmService],
})
export class LlmModule {}
