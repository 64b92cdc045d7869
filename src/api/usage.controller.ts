import { Controller, Get, Param, Query } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiForbiddenResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { AdminOnly } from '../auth/auth.decorators';
import { ErrorResponseDto } from '../common/errors/error-response';
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
@ApiUnauthorizedResponse({ type: ErrorResponseDto, description: 'Missing, malformed or unknown API key' })
@ApiForbiddenResponse({ type: ErrorResponseDto, description: 'The key is not an admin key' })
@ApiBadRequestResponse({ type: ErrorResponseDto, description: 'A bad date, range, groupBy or cursor' })
@ApiServiceUnavailableResponse({ type: ErrorResponseDto, description: 'The database is unreachable' })
@AdminOnly()
@Controller('v1')
export class UsageController {
  constructor(
    private readonly usage: UsageService,
    private readonly organizations: OrganizationsService,
  ) {}

  @Get('organizations/:id/usage')
  @ApiOperation({ summary: "An organization's usage over a time range, in totals and grouped by model, day or caller key" })
  @ApiOkResponse({ type: UsageSummaryDto })
  @ApiNotFoundResponse({ type: ErrorResponseDto, description: 'No such organization' })
  async organizationUsage(@Param('id', parseUuid) id: string, @Query() query: OrganizationUsageQueryDto): Promise<UsageSummaryDto> {
    const filter: UsageFilter = { organizationId: id, ...range(query) };
    await this.organizations.findOne(id);
    return { organizationId: id, ...this.period(filter), ...(await this.usage.summarize(filter, query.groupBy)) };
  }

  @Get('usage')
  @ApiOperation({ summary: 'Usage across organizations over a time range, grouped by organization, model or day' })
  @ApiOkResponse({ type: UsageSummaryDto })
  async allUsage(@Query() query: UsageQueryDto): Promise<UsageSummaryDto> {
    const filter = range(query);
    return { ...this.period(filter), ...(await this.usage.summarize(filter, query.groupBy)) };
  }

  @Get('usage/records')
  @ApiOperation({ summary: 'The raw usage records (one per upstream attempt), newest first, page by page' })
  @ApiOkResponse({ type: UsageRecordsPageDto })
  async records(@Query() query: UsageRecordsQueryDto): Promise<UsageRecordsPageDto> {
    const page = await this.usage.records({ organizationId: query.organizationId, ...range(query) }, query.limit, query.cursor);
    return { items: page.items.map((record) => UsageRecordDto.from(record)), nextCursor: page.nextCursor };
  }

  private period({ from, to }: UsageFilter): { from: string; to: string } {
    return { from: from.toISOString(), to: to.toISOString() };
  }
}
