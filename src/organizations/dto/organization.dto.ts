import { ApiProperty } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, IsUUID, Max, MaxLength, Min, MinLength, ValidateIf } from 'class-validator';
import { IsModelName } from '../../common/model-name';
import { IsOptionalNotNull } from '../../common/validation';
import { Organization } from '../organization.entity';

// As in the chat DTOs: the type check sits closest to the property, because the pipe stops at the
// first failed constraint and class-validator runs them bottom-up.

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
}

export const MAX_PAGE_SIZE = 100;
export const MAX_OFFSET = 1_000_000;

export class ListOrganizationsQueryDto {
  @IsOptional()
  @Max(MAX_PAGE_SIZE)
  @Min(1)
  @IsInt()
  @Type(() => Number)
  limit: number = 20;

  /** At most MAX_OFFSET: deeper pages are not a use case, and larger numbers overflow the database's bigint. */
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

  createdAt!: Date;

  updatedAt!: Date;

  static from(organization: Organization): OrganizationDto {
    const { id, name, llmModel, llmFallbackModel, createdAt, updatedAt } = organization;
    return { id, name, llmModel, llmFallbackModel, createdAt, updatedAt };
  }
}

export class OrganizationListDto {
  items!: OrganizationDto[];

  @ApiProperty({ example: 42 })
  total!: number;

  @ApiProperty({ example: 20 })
  limit!: number;

  @ApiProperty({ example: 0 })
  offset!: number;
}
