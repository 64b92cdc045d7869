import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { HealthIndicatorService } from '@nestjs/terminus';
import { Environment } from '../config/environment';
import { LimitsStore } from './limits.store';

/** The limits' store answers (Redis: a PING within HEALTH_CHECK_TIMEOUT_MS; the memory store always does). */
@Injectable()
export class LimitsHealthIndicator {
  private readonly timeoutMs: number;

  constructor(
    private readonly healthIndicators: HealthIndicatorService,
    private readonly store: LimitsStore,
    config: ConfigService<Environment, true>,
  ) {
    this.timeoutMs = config.get('HEALTH_CHECK_TIMEOUT_MS', { infer: true });
  }

  isReachable(key: string) {
    return this.healthIndicators
      .check(key)
      .attempt(() => this.store.ping())
      .withTimeout(this.timeoutMs);
  }
}
