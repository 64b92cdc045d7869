import { Controller, Get, Param } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiParam, ApiProperty, ApiTags } from '@nestjs/swagger';
import { ApiErrorResponses } from '../common/errors/error-examples';
import { parseUuid } from '../common/validation';
import { BUDGET_PERIODS } from '../config/environment';
import { LimitsUnavailableError, limitsUnavailableError } from '../limits/limits.errors';
import { LimitsStore } from '../limits/limits.store';
import type { OrganizationLimitsUsage } from '../limits/limits.types';
import { limitsOf, OrganizationsService } from '../organizations/organizations.service';
import { UsageService } from '../usage/usage.service';

class LimitUsageDto {
  /** null: unlimited. */
  @ApiProperty({ type: 'integer', nullable: true, example: 600 })
  limit!: number | null;

  /** Counted now (calls in flight, for concurrency); null when the limit is off. */
  @ApiProperty({ type: 'integer', nullable: true, example: 42 })
  used!: number | null;

  @ApiProperty({ type: 'integer', nullable: true, example: 558 })
  remaining!: number | null;

  /** When the minute or the budget period turns; null for concurrency or an unlimited limit. */
  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  resetsAt!: Date | null;
}

class BudgetUsageDto extends LimitUsageDto {
  @ApiProperty({ enum: BUDGET_PERIODS })
  period!: 'day' | 'month';

  /** Of `used`: the estimates of calls still in flight. */
  @ApiProperty({ type: 'integer', nullable: true, example: 4096 })
  reserved!: number | null;
}

class OrganizationLimitsUsageDto implements OrganizationLimitsUsage {
  requestsPerMinute!: LimitUsageDto;
  tokensPerMinute!: LimitUsageDto;
  concurrentRequests!: LimitUsageDto;
  tokenBudget!: BudgetUsageDto;
}

/** An organization's limits as they stand: what is used, what remains, when each resets. */
@ApiTags('organizations')
@ApiBearerAuth('api-key')
@Controller('v1/organizations')
export class LimitsController {
  constructor(
    private readonly organizations: OrganizationsService,
    private readonly limits: LimitsStore,
    private readonly usage: UsageService,
  ) {}

  @Get(':id/limits')
  @ApiOperation({
    summary: "An organization's limits: each one's use now, what remains, and when it resets",
    description: 'A limit that is off has null figures. The token budget counts the ledger\'s tokens plus the estimates of the calls in flight (`reserved`).',
  })
  @ApiParam({ name: 'id', description: "The organization's id", example: '6f1c2f9e-2a59-4c43-9d2b-3a4f6f1f0e11', type: String, format: 'uuid' })
  @ApiOkResponse({ type: OrganizationLimitsUsageDto })
  @ApiErrorResponses('VALIDATION_FAILED', 'UNAUTHORIZED', 'ORGANIZATION_NOT_FOUND', 'DATABASE_UNAVAILABLE', 'LIMITS_UNAVAILABLE')
  async limitsOf(@Param('id', parseUuid) id: string): Promise<OrganizationLimitsUsageDto> {
    const organization = await this.organizations.findOne(id);
    try {
      return await this.limits.usage({
        organizationId: id,
        limits: limitsOf(organization),
        loadPeriodUsage: ({ startsAt, endsAt }) => this.usage.tokensBetween(id, startsAt, endsAt),
      });
    } catch (error) {
      throw error instanceof LimitsUnavailableError ? limitsUnavailableError() : error;
    }
  }
}
