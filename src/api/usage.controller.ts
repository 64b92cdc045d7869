import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { AdminOnly } from '../auth/auth.decorators';
import { ApiErrorResponses } from '../common/errors/error-examples';
import { GatewayError } from '../common/errors/gateway-error';
import { parseUuid } from '../common/validation';
import { OrganizationsService } from '../organizations/organizations.service';
import { UsageFilter, UsageService } from '../usage/usage.service';
import {
  OrganizationUsageQueryDto,
  UsageQueryDto,
  UsageRangeQueryDto,
  UsageRecordDto,
  UsageRecordsPageDto,
  UsageRecordsQueryDto,
  UsageSummaryDto,
} from './dto/usage.dto';

/** [from, to): from defaults to the start of the current month (UTC), to to now. */
function range({ from, to }: UsageRangeQueryDto): { from: Date; to: Date } {
  const now = new Date();
  const range = {
    from: from ? new Date(from) : new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)),
    to: to ? new Date(to) : now,
  };
  if (range.from >= range.to) throw new GatewayError('VALIDATION_FAILED', 'from must be before to');
  return range;
}

/** The usage ledger, for finance and operators: admin keys only. */
@ApiTags('usage')
@ApiBearerAuth('api-key')
@AdminOnly()
@Controller('v1')
export class UsageController {
  constructor(
    private readonly usage: UsageService,
    private readonly organizations: OrganizationsService,
  ) {}

  @Get('organizations/:id/usage')
  @ApiOperation({
    summary: "An organization's usage over a time range, in totals and grouped by model, day or caller key",
    description: 'The range is [from, to): from defaults to the start of the current month (UTC), to to now. Records are visible within USAGE_FLUSH_INTERVAL_MS + 1 s.',
  })
  @ApiParam({ name: 'id', description: "The organization's id", example: '6f1c2f9e-2a59-4c43-9d2b-3a4f6f1f0e11', type: String, format: 'uuid' })
  @ApiOkResponse({ type: UsageSummaryDto })
  @ApiErrorResponses('VALIDATION_FAILED', 'UNAUTHORIZED', 'FORBIDDEN', 'ORGANIZATION_NOT_FOUND', 'DATABASE_UNAVAILABLE')
  async organizationUsage(@Param('id', parseUuid) id: string, @Query() query: OrganizationUsageQueryDto): Promise<UsageSummaryDto> {
    const filter: UsageFilter = { organizationId: id, ...range(query) };
    await this.organizations.findOne(id);
    return { organizationId: id, ...this.period(filter), ...(await this.usage.summarize(filter, query.groupBy)) };
  }

  @Get('usage')
  @ApiOperation({
    summary: 'Usage across organizations over a time range, grouped by organization, model or day',
    description: 'Calls made without an organization are grouped under the key `none`. The range is as for one organization.',
  })
  @ApiOkResponse({ type: UsageSummaryDto })
  @ApiErrorResponses('VALIDATION_FAILED', 'UNAUTHORIZED', 'FORBIDDEN', 'DATABASE_UNAVAILABLE')
  async allUsage(@Query() query: UsageQueryDto): Promise<UsageSummaryDto> {
    const filter = range(query);
    return { ...this.period(filter), ...(await this.usage.summarize(filter, query.groupBy)) };
  }

  @Get('usage/records')
  @ApiOperation({
    summary: 'The raw usage records (one per upstream attempt), newest first, page by page',
    description: 'When more records follow, the page carries `nextCursor`; pass it as `cursor` for the next, older page.',
  })
  @ApiOkResponse({ type: UsageRecordsPageDto })
  @ApiErrorResponses('VALIDATION_FAILED', 'UNAUTHORIZED', 'FORBIDDEN', 'DATABASE_UNAVAILABLE')
  async records(@Query() query: UsageRecordsQueryDto): Promise<UsageRecordsPageDto> {
    const page = await this.usage.records({ organizationId: query.organizationId, ...range(query) }, query.limit, query.cursor);
    return { items: page.items.map((record) => UsageRecordDto.from(record)), nextCursor: page.nextCursor };
  }

  private period({ from, to }: UsageFilter): { from: string; to: string } {
    return { from: from.toISOString(), to: to.toISOString() };
  }
}
