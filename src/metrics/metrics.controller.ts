import { Controller, Get, Header } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { Public } from '../auth/auth.decorators';
import { GatewayError } from '../common/errors/gateway-error';
import { Environment } from '../config/environment';
import { MetricsService } from './metrics.service';

@ApiTags('operations')
@Public()
@Controller('metrics')
export class MetricsController {
  private readonly enabled: boolean;

  constructor(
    private readonly metrics: MetricsService,
    config: ConfigService<Environment, true>,
  ) {
    this.enabled = config.get('METRICS_ENABLED', { infer: true });
  }

  @Get()
  @Header('content-type', 'text/plain; version=0.0.4; charset=utf-8')
  @ApiOperation({ summary: 'Prometheus metrics (METRICS_ENABLED=false turns this off)' })
  @ApiProduces('text/plain')
  @ApiOkResponse({ description: 'Prometheus text exposition format' })
  async metricsText(): Promise<string> {
    if (!this.enabled) throw new GatewayError('NOT_FOUND', 'Metrics are off (METRICS_ENABLED=false)');
    return this.metrics.registry.metrics();
  }
}
