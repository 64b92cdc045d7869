import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { LiteLLMModule } from '../litellm/litellm.module';
import { HealthController } from './health.controller';

@Module({
  imports: [TerminusModule.forRoot({ logger: false }), LiteLLMModule],
  controllers: [HealthController],
})
export class HealthModule {}
