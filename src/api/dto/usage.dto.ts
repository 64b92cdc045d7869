import { ApiProperty } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsISO8601, IsOptional, IsString, IsUUID, Max, MaxLength, Min } from 'class-validator';
import type { UsageRecord } from '../../usage/usage-record.entity';

export const MAX_RECORDS_PAGE = 1_000;

/** The time range of a usage query: [from, to), UTC. */
export class UsageRangeQueryDto {
  /** ISO 8601; default: the start of the current month (UTC). */
  @ApiProperty({ required: false, example: '2026-11-01T00:00:00Z' })
  @IsOptional()
  @IsISO8601({ strict: true })
  from?: string;

  /** ISO 8601, exclusive; default: now. */
  @ApiProperty({ required: false, example: '2026-12-01T00:00:00Z' })
  @IsOptional()
  @IsISO8601({ strict: true })
  to?: string;
}

export class OrganizationUsageQueryDto extends UsageRangeQueryDto {
  @ApiProperty({ required: false, enum: ['model', 'day', 'caller'], default: 'model' })
  @IsOptional()
  @IsIn(['model', 'day', 'caller'])
  groupBy: 'model' | 'day' | 'caller' = 'model';
}

export class UsageQueryDto extends UsageRangeQueryDto {
  @ApiProperty({ required: false, enum: ['organization', 'model', 'day'], default: 'organization' })
  @IsOptional()
  @IsIn(['organization', 'model', 'day'])
  groupBy: 'organization' | 'model' | 'day' = 'organization';
}

export class UsageRecordsQueryDto extends UsageRangeQueryDto {
  @IsOptional()
  @IsUUID()
  organizationId?: string;

  @ApiProperty({ required: false, type: 'integer', minimum: 1, maximum: MAX_RECORDS_PAGE, default: 100 })
  @IsOptional()
  @Max(MAX_RECORDS_PAGE)
  @Min(1)
  @IsInt()
  @Type(() => Number)
  limit: number = 100;

  /** `nextCursor` of the previous page. */
  @IsOptional()
  @MaxLength(500)
  @IsString()
  cursor?: string;
}

export class UsageFiguresDto {
  /** Calls (a call that fell back to its fallback model is one request). */
  @ApiProperty({ type: 'integer', minimum: 0, example: 1200 })
  requests!: number;

  @ApiProperty({ type: 'integer', minimum: 0, example: 350000 })
  promptTokens!: number;

  @ApiProperty({ type: 'integer', minimum: 0, example: 120000 })
  completionTokens!: number;

  /** Every attempt's tokens, the failed ones' included. */
  @ApiProperty({ type: 'integer', minimum: 0, example: 470000 })
  totalTokens!: number;

  /** The costs LiteLLM reported, summed; null when it reported none. */
  @ApiProperty({ type: Number, nullable: true, example: 2.35 })
  costUsd!: number | null;

  /** Calls whose last attempt failed (a caller who left is not counted). */
  @ApiProperty({ type: 'integer', minimum: 0, example: 3 })
  errors!: number;
}

export class UsageGroupDto extends UsageFiguresDto {
  /** The model, the day (YYYY-MM-DD, UTC), the caller key id or the organization id; `none` when absent. */
  @ApiProperty({ example: 'gpt-4o' })
  key!: string;
}

export class UsageSummaryDto {
  @ApiProperty({ required: false, format: 'uuid' })
  organizationId?: string;

  @ApiProperty({ example: '2026-11-01T00:00:00.000Z' })
  from!: string;

  @ApiProperty({ example: '2026-11-29T12:00:00.000Z' })
  to!: string;

  totals!: UsageFiguresDto;

  groups!: UsageGroupDto[];
}

export class UsageRecordDto {
  callId!: string;
  @ApiProperty({ type: 'integer', minimum: 1, example: 1 })
  attempt!: number;
  requestId!: string;
  organizationId!: string | null;
  callerKeyId!: string | null;
  route!: string;
  operation!: string;
  requestedModel!: string | null;
  model!: string;
  upstreamModel!: string | null;
  fallbackReason!: string | null;
  /** `ok`, an error code, `aborted_by_caller` or `truncated`. */
  outcome!: string;
  @ApiProperty({ type: 'integer', minimum: 0, example: 1 })
  promptTokens!: number;
  @ApiProperty({ type: 'integer', minimum: 0, example: 2 })
  completionTokens!: number;
  @ApiProperty({ type: 'integer', minimum: 0, example: 3 })
  totalTokens!: number;
  @ApiProperty({ type: 'integer', nullable: true, minimum: 0 })
  cachedPromptTokens!: number | null;
  tokensEstimated!: boolean;
  costUsd!: number | null;
  startedAt!: Date;
  @ApiProperty({ type: 'integer', nullable: true, minimum: 0, example: 41 })
  timeToFirstByteMs!: number | null;
  @ApiProperty({ type: 'integer', minimum: 0, example: 42 })
  durationMs!: number;

  static from(record: UsageRecord): UsageRecordDto {
    const { recordedAt: _recordedAt, costUsd, ...rest } = record;
    return { ...rest, costUsd: costUsd === null ? null : Number(costUsd) };
  }
}

export class UsageRecordsPageDto {
  items!: UsageRecordDto[];

  /** For the next, older page; absent on the last one. */
  @ApiProperty({ required: false })
  nextCursor?: string;
}
