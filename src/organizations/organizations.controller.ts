import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { AdminOnly } from '../auth/auth.decorators';
import { ApiErrorResponses } from '../common/errors/error-examples';
import { parseUuid } from '../common/validation';
import {
  CreateOrganizationDto,
  ListOrganizationsQueryDto,
  OrganizationDto,
  OrganizationListDto,
  UpdateOrganizationDto,
} from './dto/organization.dto';
import { OrganizationsService } from './organizations.service';

/** The `:id` of the routes below, with the README's example organization. */
const OrganizationId = () =>
  ApiParam({ name: 'id', description: "The organization's id (a UUID)", example: '6f1c2f9e-2a59-4c43-9d2b-3a4f6f1f0e11', type: String, format: 'uuid' });

@ApiTags('organizations')
@ApiBearerAuth('api-key')
@Controller('v1/organizations')
export class OrganizationsController {
  constructor(private readonly organizations: OrganizationsService) {}

  @Post()
  @AdminOnly()
  @ApiOperation({
    summary: 'Create an organization (admin key)',
    description:
      'With your own `id` if you have one, or one made by the gateway. `llmModel` (default gpt-4o) and `llmFallbackModel` ' +
      '(default claude-3-5-sonnet, null for none) must be chat models LiteLLM serves; absent `limits` take the LIMITS_DEFAULT_* settings.',
  })
  @ApiCreatedResponse({ type: OrganizationDto })
  @ApiErrorResponses(
    'VALIDATION_FAILED',
    'UNKNOWN_MODEL',
    'FALLBACK_SAME_AS_PRIMARY',
    'UNAUTHORIZED',
    'FORBIDDEN',
    'ORGANIZATION_EXISTS',
    'DATABASE_UNAVAILABLE',
    'MODEL_CATALOG_UNAVAILABLE',
  )
  async create(@Body() body: CreateOrganizationDto): Promise<OrganizationDto> {
    return OrganizationDto.from(await this.organizations.create(body));
  }

  @Get()
  @ApiOperation({ summary: 'List organizations, oldest first, a page at a time', description: '`limit` 1 to 100 (default 20), `offset` 0 to 1,000,000.' })
  @ApiOkResponse({ type: OrganizationListDto })
  @ApiErrorResponses('VALIDATION_FAILED', 'UNAUTHORIZED', 'DATABASE_UNAVAILABLE')
  async findAll(@Query() query: ListOrganizationsQueryDto): Promise<OrganizationListDto> {
    const page = await this.organizations.findAll(query.limit, query.offset);
    return { ...page, items: page.items.map((organization) => OrganizationDto.from(organization)) };
  }

  @Get(':id')
  @ApiOperation({ summary: 'One organization: its models and limits' })
  @OrganizationId()
  @ApiOkResponse({ type: OrganizationDto })
  @ApiErrorResponses('VALIDATION_FAILED', 'UNAUTHORIZED', 'ORGANIZATION_NOT_FOUND', 'DATABASE_UNAVAILABLE')
  async findOne(@Param('id', parseUuid) id: string): Promise<OrganizationDto> {
    return OrganizationDto.from(await this.organizations.findOne(id));
  }

  @Patch(':id')
  @AdminOnly()
  @ApiOperation({
    summary: 'Change an organization (admin key)',
    description:
      'Only the fields given change; `llmFallbackModel: null` clears the fallback, a limit set to null is lifted. Every ' +
      'gateway instance drops its cached copy at once.',
  })
  @OrganizationId()
  @ApiOkResponse({ type: OrganizationDto })
  @ApiErrorResponses(
    'VALIDATION_FAILED',
    'UNKNOWN_MODEL',
    'FALLBACK_SAME_AS_PRIMARY',
    'UNAUTHORIZED',
    'FORBIDDEN',
    'ORGANIZATION_NOT_FOUND',
    'DATABASE_UNAVAILABLE',
    'MODEL_CATALOG_UNAVAILABLE',
  )
  async update(@Param('id', parseUuid) id: string, @Body() body: UpdateOrganizationDto): Promise<OrganizationDto> {
    return OrganizationDto.from(await this.organizations.update(id, body));
  }

  @Delete(':id')
  @AdminOnly()
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete an organization (admin key)', description: 'Its usage records stay in the ledger.' })
  @OrganizationId()
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiErrorResponses('VALIDATION_FAILED', 'UNAUTHORIZED', 'FORBIDDEN', 'ORGANIZATION_NOT_FOUND', 'DATABASE_UNAVAILABLE')
  async remove(@Param('id', parseUuid) id: string): Promise<void> {
    await this.organizations.remove(id);
  }
}
