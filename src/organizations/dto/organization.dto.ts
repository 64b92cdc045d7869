import { ApiProperty } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsObject, IsOptional, IsString, IsUUID, Max, MaxLength, Min, MinLength, ValidateIf, ValidateNested } from 'class-validator';
import { BUDGET_PERIODS, BudgetPeriod } from '../../config/environment';
import { IsModelName } from '../../common/model-name';
import { IsOptionalNotNull } from '../../common/validation';
import { Organization } from '../organization.entity';

// As in the chat DTOs: the type check sits closest to the property, because the pipe stops at the
// first failed constraint and class-validator runs them bottom-up.

/** A limit's value is validated unless it is null (unlimited) or absent (the default, or unchanged). */
const IfGiven = () => ValidateIf((_object, value) => value !== null && value !== undefined);

/**
 * An organization's limits; every one optional, null meaning unlimited. On create, an absent one takes the
 * LIMITS_DEFAULT_* configuration; on update, an absent one stays as it is.
 */
export class OrganizationLimitsDto {
  /** Calls per minute (a fixed UTC minute), across every gateway replica. */
  @ApiProperty({ required: false, nullable: true, type: 'integer', minimum: 1, maximum: 1_000_000, example: 600 })
  @IfGiven()
  @Max(1_000_000)
  @Min(1)
  @IsInt()
  requestsPerMinute?: number | null;

  /** Prompt and completion tokens per minute; each call reserves its estimate (prompt + maxTokens) at admission. */
  @ApiProperty({ required: false, nullable: true, type: 'integer', minimum: 1, maximum: 1_000_000_000, example: 200_000 })
  @IfGiven()
  @Max(1_000_000_000)
  @Min(1)
  @IsInt()
  tokensPerMinute?: number | null;

  /** Calls in flight at once (streams hold theirs until they end). */
  @ApiProperty({ required: false, nullable: true, type: 'integer', minimum: 1, maximum: 100_000, example: 20 })
  @IfGiven()
  @Max(100_000)
  @Min(1)
  @IsInt()
  concurrentRequests?: number | null;

  /** Tokens per budget period, prompt and completion together. */
  @ApiProperty({ required: false, nullable: true, type: 'integer', minimum: 1, maximum: 1_000_000_000_000, example: 50_000_000 })
  @IfGiven()
  @Max(1_000_000_000_000)
  @Min(1)
  @IsInt()
  tokenBudget?: number | null;

  /** The budget's period, in UTC. */
  @ApiProperty({ required: false, enum: BUDGET_PERIODS, example: 'month' })
  @IsOptionalNotNull()
  @IsIn(BUDGET_PERIODS)
  budgetPeriod?: BudgetPeriod;
}

/** Every limit, as stored: null is unlimited. */
export class OrganizationLimitsViewDto {
  @ApiProperty({ nullable: true, type: 'integer', example: 600 })
  requestsPerMinute!: number | null;

  @ApiProperty({ nullable: true, type: 'integer', example: 200_000 })
  tokensPerMinute!: number | null;

  @ApiProperty({ nullable: true, type: 'integer', example: 20 })
  concurrentRequests!: number | null;

  @ApiProperty({ nullable: true, type: 'integer', example: 50_000_000 })
  tokenBudget!: number | null;

  @ApiProperty({ enum: BUDGET_PERIODS, example: 'month' })
  budgetPeriod!: BudgetPeriod;
}

export class CreateOrganizationDto {
  /** Your own id for the organization, if you have one; generated otherwise. */
  @ApiProperty({ required: false, example: '6f1c2f9e-2a59-4c43-9d2b-3a4f6f1f0e11' })
  @IsOptionalNotNull()
  @IsUUID()
  id?: string;

  @ApiProperty({ example: 'Acme Corp' })
  @MaxLength(200)
  @MinLength(1)
  @IsString()
  name!: string;

  /** The model its calls use; one LiteLLM serves. Default gpt-4o. */
  @ApiProperty({ required: false, example: 'gpt-4o' })
  @IsOptionalNotNull()
  @IsModelName()
  @IsString()
  llmModel?: string;

  /** Tried once when the primary fails with a non-retryable error; null for none. Default claude-3-5-sonnet. */
  @ApiProperty({ required: false, nullable: true, type: String, example: 'claude-3-5-sonnet' })
  @ValidateIf((_, value) => value !== null && value !== undefined)
  @IsModelName()
  @IsString()
  llmFallbackModel?: string | null;

  /** Rate limits and a token budget; see OrganizationLimitsDto. */
  @IsOptionalNotNull()
  @ValidateNested()
  @Type(() => OrganizationLimitsDto)
  @IsObject()
  limits?: OrganizationLimitsDto;
}

export class UpdateOrganizationDto {
  @ApiProperty({ required: false, example: 'Acme Corporation' })
  @IsOptionalNotNull()
  @MaxLength(200)
  @MinLength(1)
  @IsString()
  name?: string;

  @ApiProperty({ required: false, example: 'claude-3-5-sonnet' })
  // null is not "unset" here: an organization always has a primary model.
  @IsOptionalNotNull()
  @IsModelName()
  @IsString()
  llmModel?: string;

  /** null clears the fallback. */
  @ApiProperty({ required: false, nullable: true, type: String, example: 'gpt-4o' })
  @ValidateIf((_, value) => value !== null && value !== undefined)
  @IsModelName()
  @IsString()
  llmFallbackModel?: string | null;

  /** Rate limits and a token budget; see OrganizationLimitsDto. */
  @IsOptionalNotNull()
  @ValidateNested()
  @Type(() => OrganizationLimitsDto)
  @IsObject()
  limits?: OrganizationLimitsDto;
}

export const MAX_PAGE_SIZE = 100;
export const MAX_OFFSET = 1_000_000;

export class ListOrganizationsQueryDto {
  @ApiProperty({ required: false, type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE, default: 20 })
  @IsOptional()
  @Max(MAX_PAGE_SIZE)
  @Min(1)
  @IsInt()
  @Type(() => Number)
  limit: number = 20;

  /** At most MAX_OFFSET: deeper pages are not a use case, and larger numbers overflow the database's bigint. */
  @ApiProperty({ required: false, type: 'integer', minimum: 0, maximum: MAX_OFFSET, default: 0 })
  @IsOptional()
  @Max(MAX_OFFSET)
  @Min(0)
  @IsInt()
  @Type(() => Number)
  offset: number = 0;
}

export class OrganizationDto {
  @ApiProperty({ format: 'uuid', example: '6f1c2f9e-2a59-4c43-9d2b-3a4f6f1f0e11' })
  id!: string;

  @ApiProperty({ example: 'Acme Corp' })
  name!: string;

  @ApiProperty({ example: 'gpt-4o' })
  llmModel!: string;

  @ApiProperty({ nullable: true, type: String, example: 'claude-3-5-sonnet' })
  llmFallbackModel!: string | null;

  limits!: OrganizationLimitsViewDto;

  createdAt!: Date;

  updatedAt!: Date;

  static from(organization: Organization): OrganizationDto {
    const { id, name, llmModel, llmFallbackModel, createdAt, updatedAt } = organization;
    const { requestsPerMinute, tokensPerMinute, concurrentRequests, tokenBudget, budgetPeriod } = organization;
    const limits = { requestsPerMinute, tokensPerMinute, concurrentRequests, tokenBudget, budgetPeriod };
    return { id, name, llmModel, llmFallbackModel, limits, createdAt, updatedAt };
  }
}

export class OrganizationListDto {
  @ApiProperty({ type: () => [OrganizationDto], maxItems: MAX_PAGE_SIZE })
  items!: OrganizationDto[];

  @ApiProperty({ type: 'integer', minimum: 0, example: 42 })
  total!: number;

  @ApiProperty({ type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE, example: 20 })
  limit!: number;

  @ApiProperty({ type: 'integer', minimum: 0, maximum: MAX_OFFSET, example: 0 })
  offset!: number;
}
