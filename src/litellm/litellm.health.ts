import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { HealthIndicatorService } from '@nestjs/terminus';
import { Environment } from '../config/environment';

/**
 * LiteLLM is up when its public liveness path answers. Never its GET /health: that one makes a real,
 * paid completion call to every configured model.
 */
@Injectable()
export class LiteLLMHealthIndicator {
  private readonly livenessUrl: string;
  private readonly timeoutMs: number;

  constructor(
    private readonly healthIndicators: HealthIndicatorService,
    config: ConfigService<Environment, true>,
  ) {
    this.livenessUrl = `${config.get('LITELLM_URL', { infer: true }).replace(/\/+$/, '')}/health/liveliness`;
    this.timeoutMs = config.get('HEALTH_CHECK_TIMEOUT_MS', { infer: true });
  }

  isLive(key: string) {
    return this.healthIndicators
      .check(key)
      .attempt(async ({ signal }) => {
        const response = await fetch(this.livenessUrl, { signal });
        await response.arrayBuffer();
        if (!response.ok) throw new Error(`LiteLLM liveness answered HTTP ${response.status}`);
      })
      .withTimeout(this.timeoutMs);
  }
}
