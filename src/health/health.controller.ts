import { Controller, Get, Logger, Res, ServiceUnavailableException } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import { HealthCheckResult, HealthCheckService, HealthIndicatorFunction, HealthIndicatorResult, TypeOrmHealthIndicator } from '@nestjs/terminus';
import type { FastifyReply } from 'fastify';
import { Public } from '../auth/auth.decorators';
import { Environment } from '../config/environment';
import { ShutdownService } from '../lifecycle/shutdown.service';
import { LimitsHealthIndicator } from '../limits/limits.health';
import { LiteLLMHealthIndicator } from '../litellm/litellm.health';

/** Probes for the orchestrator. No key needed; no dependency is called more than once per probe. */
@ApiTags('health')
@Public()
@Controller('health')
export class HealthController {
  private readonly logger = new Logger('Readiness');
  /** The last readiness answer, so that a change is logged once (probes themselves log at debug). */
  private lastReady: boolean | undefined;
  private readonly readinessIncludesLiteLLM: boolean;
  private readonly timeoutMs: number;
  /** Redis holds the limits only when REDIS_URL is set; without it they are in memory and always answer. */
  private readonly usesRedis: boolean;
  /** With LIMITS_FAIL_MODE=closed a Redis outage refuses every limited call: the instance is not ready. */
  private readonly limitsFailClosed: boolean;

  constructor(
    private readonly health: HealthCheckService,
    private readonly database: TypeOrmHealthIndicator,
    private readonly litellm: LiteLLMHealthIndicator,
    private readonly limits: LimitsHealthIndicator,
    private readonly shutdown: ShutdownService,
    config: ConfigService<Environment, true>,
  ) {
    this.readinessIncludesLiteLLM = config.get('HEALTH_READY_INCLUDE_LITELLM', { infer: true });
    this.timeoutMs = config.get('HEALTH_CHECK_TIMEOUT_MS', { infer: true });
    this.usesRedis = config.get('REDIS_URL', { infer: true }) !== undefined;
    this.limitsFailClosed = config.get('LIMITS_FAIL_MODE', { infer: true }) === 'closed';
  }

  @Get('live')
  @ApiOperation({ summary: 'Liveness: the process answers. No dependency is checked; 200 while draining too.' })
  @ApiOkResponse({ description: '{"status":"ok"}' })
  live(): { status: 'ok' } {
    // Not through Terminus: it fails every check once shutdown begins, and liveness must not.
    return { status: 'ok' };
  }

  @Get('ready')
  @ApiOperation({
    summary:
      'Readiness: the database and (unless HEALTH_READY_INCLUDE_LITELLM=false) LiteLLM answer, and Redis with LIMITS_FAIL_MODE=closed ' +
      '(with open, Redis is reported but does not fail readiness); 503 once shutdown begins',
  })
  @ApiOkResponse({ description: 'Ready' })
  @ApiServiceUnavailableResponse({ description: "Terminus' details, naming what is down, or shutting down" })
  async ready(@Res({ passthrough: true }) reply: FastifyReply): Promise<unknown> {
    if (this.shutdown.isShuttingDown) {
      void reply.status(503);
      return { status: 'shutting_down', info: {}, error: {}, details: {} };
    }
    const result = await this.run(reply, this.readinessIncludesLiteLLM);
    this.logChange(result, String(reply.request.id));
    return result;
  }

  @Get()
  @ApiOperation({ summary: 'Both checks with their details, for dashboards' })
  @ApiOkResponse({ description: 'Everything is up' })
  @ApiServiceUnavailableResponse({ description: 'Something is down; the details say what' })
  async details(@Res({ passthrough: true }) reply: FastifyReply): Promise<unknown> {
    return this.run(reply, true);
  }

  /**
   * Terminus throws its 503 with the details as the body; they are what the caller needs, so they are sent as
   * they are. Redis, when the limits may go unchecked without it (LIMITS_FAIL_MODE=open), is reported beside the
   * checks, `down` included, without failing them: the instance still serves every call.
   */
  private async run(reply: FastifyReply, includeLiteLLM: boolean): Promise<HealthCheckResult> {
    const checks: HealthIndicatorFunction[] = [() => this.database.pingCheck('database').withTimeout(this.timeoutMs)];
    if (includeLiteLLM) checks.push(() => this.litellm.isReady('litellm'));
    if (this.usesRedis && this.limitsFailClosed) checks.push(() => this.limits.isReachable('redis'));
    const redis = this.usesRedis && !this.limitsFailClosed ? this.redisReport() : undefined;
    let result: HealthCheckResult;
    try {
      result = await this.health.check(checks);
    } catch (error) {
      if (!(error instanceof ServiceUnavailableException)) throw error;
      void reply.status(503);
      result = error.getResponse() as HealthCheckResult;
    }
    if (redis) result.details = { ...result.details, redis: await redis };
    return result;
  }

  /** Not ready is worth a warning naming the cause, once, and so is ready again. */
  private logChange(result: HealthCheckResult, requestId: string): void {
    const ready = result.status === 'ok';
    if (ready === this.lastReady) return;
    const first = this.lastReady === undefined;
    this.lastReady = ready;
    if (!ready) {
      const causes = Object.entries(result.error ?? {}).map(([name, check]) => `${name}: ${String(check?.message ?? check?.status)}`);
      this.logger.warn({ msg: `Not ready: ${causes.join('; ')}`, requestId, ready, causes: result.error });
    } else if (!first) {
      this.logger.log({ msg: 'Ready again', requestId, ready });
    }
  }

  private async redisReport(): Promise<HealthIndicatorResult[string]> {
    const { redis } = (await this.limits.isReachable('redis')) as HealthIndicatorResult;
    return redis.status === 'up' ? redis : { ...redis, effect: 'rate limits go unchecked until Redis is back (LIMITS_FAIL_MODE=open)' };
  }
}
