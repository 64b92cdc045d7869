import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiConflictResponse,
  ApiForbiddenResponse,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { AdminOnly } from '../auth/auth.decorators';
import { ErrorResponseDto } from '../common/errors/error-response';
import { parseUuid } from '../common/validation';
import {
  CreateOrganizationDto,
  ListOrganizationsQueryDto,
  OrganizationDto,
  OrganizationListDto,
  UpdateOrganizationDto,
} from './dto/organization.dto';
import { OrganizationsService } from './organizations.service';

@ApiTags('organizations')
@ApiBearerAuth('api-key')
@ApiUnauthorizedResponse({ type: ErrorResponseDto, description: 'Missing, malformed or unknown API key' })
@ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Invalid body or id, a model LiteLLM does not serve, or fallback = primary' })
@ApiServiceUnavailableResponse({ type: ErrorResponseDto, description: 'The database, or LiteLLM (to check models), is unreachable' })
@Controller('v1/organizations')
export class OrganizationsController {
  constructor(private readonly organizations: OrganizationsService) {}

  @Post()
  @AdminOnly()
  @ApiForbiddenResponse({ type: ErrorResponseDto, description: 'The key is not an admin key' })
  @ApiCreatedResponse({ type: OrganizationDto })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'An organization with this id exists' })
  async create(@Body() body: CreateOrganizationDto): Promise<OrganizationDto> {
    return OrganizationDto.from(await this.organizations.create(body));
  }

  @Get()
  @ApiOkResponse({ type: OrganizationListDto })
  async findAll(@Query() query: ListOrganizationsQueryDto): Promise<OrganizationListDto> {
    const page = await this.organizations.findAll(query.limit, query.offset);
    return { ...page, items: page.items.map((organization) => OrganizationDto.from(organization)) };
  }

  @Get(':id')
  @ApiOkResponse({ type: OrganizationDto })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  async findOne(@Param('id', parseUuid) id: string): Promise<OrganizationDto> {
    return OrganizationDto.from(await this.organizations.findOne(id));
  }

  @Patch(':id')
  @AdminOnly()
  @ApiForbiddenResponse({ type: ErrorResponseDto, description: 'The key is not an admin key' })
  @ApiOkResponse({ type: OrganizationDto })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  async update(@Param('id', parseUuid) id: string, @Body() body: UpdateOrganizationDto): Promise<OrganizationDto> {
    return OrganizationDto.from(await this.organizations.update(id, body));
  }

  @Delete(':id')
  @AdminOnly()
  @ApiForbiddenResponse({ type: ErrorResponseDto, description: 'The key is not an admin key' })
  @HttpCode(204)
  @ApiNoContentResponse()
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  async remove(@Param('id', parseUuid) id: string): Promise<void> {
    await this.organizations.remove(id);
  }
}
