import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { LimitsModule } from '../limits/limits.module';
import { LiteLLMModule } from '../litellm/litellm.module';
import { HealthController } from './health.controller';

@Module({
  imports: [TerminusModule.forRoot({ logger: false }), LiteLLMModule, LimitsModule],
  controllers: [HealthController],
})
export class HealthModule {}
