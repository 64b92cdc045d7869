import { Module } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { TerminusModule } from '@nestjs/terminus';
import { Environment } from '../config/environment';
import { MetricsService } from '../metrics/metrics.service';
import { LimitsHealthIndicator } from './limits.health';
import { LimitsStore } from './limits.store';
import { MemoryLimitsStore } from './memory-limits.store';
import { RedisLimitsStore } from './redis-limits.store';

/** The limits' store: in Redis when REDIS_URL is set (any number of replicas), else in this process's memory. */
@Module({
  imports: [TerminusModule],
  providers: [
    {
      provide: LimitsStore,
      inject: [ConfigService, MetricsService],
      useFactory: (config: ConfigService<Environment, true>, metrics: MetricsService): LimitsStore => {
        const url = config.get('REDIS_URL', { infer: true });
        const leaseMs = config.get('LIMITS_SLOT_LEASE_MS', { infer: true });
        return url ? new RedisLimitsStore(metrics, { url, leaseMs }) : new MemoryLimitsStore(metrics, leaseMs);
      },
    },
    LimitsHealthIndicator,
  ],
  exports: [LimitsStore, LimitsHealthIndicator],
})
export class LimitsModule {}
