import { ApiProperty } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
  ValidateNested,
} from 'class-validator';
import { IsModelName } from '../../common/model-name';
import { CHAT_ROLES, ChatRole } from '../../litellm/litellm.types';

/** Caps that keep one request from monopolising the gateway or the budget; each 400 names its limit. */
export const MAX_CHAT_MESSAGES = 256;
export const MAX_MESSAGE_CHARS = 100_000;
export const MAX_COMPLETION_TOKENS = 32_768;

// class-validator runs a property's decorators bottom-up and the pipe stops at the first failure, so the
// type check sits closest to the property: a missing field is reported as missing, not as too long.

export class ChatMessageDto {
  @ApiProperty({ enum: CHAT_ROLES, example: 'user' })
  @IsIn(CHAT_ROLES)
  role!: ChatRole;

  @ApiProperty({ example: 'Write a haiku about gateways.' })
  @MaxLength(MAX_MESSAGE_CHARS)
  @IsString()
  content!: string;
}

export class ChatRequestDto {
  /** The conversation so far, oldest first. */
  @ValidateNested({ each: true })
  @Type(() => ChatMessageDto)
  // ValidateNested lets arrays nested in the array through: each message must be an object.
  @IsObject({ each: true })
  @ArrayMaxSize(MAX_CHAT_MESSAGES)
  @ArrayMinSize(1)
  @IsArray()
  messages!: ChatMessageDto[];

  /** A model LiteLLM serves (see GET /v1/models); DEFAULT_CHAT_MODEL when absent. */
  @ApiProperty({ required: false, example: 'gpt-4o' })
  @IsOptional()
  @IsModelName()
  @IsString()
  model?: string;

  /** Sampling temperature. */
  @IsOptional()
  @Max(2)
  @Min(0)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  temperature?: number;

  /** Upper bound on the completion's tokens. */
  @IsOptional()
  @Max(MAX_COMPLETION_TOKENS)
  @Min(1)
  @IsInt()
  maxTokens?: number;

  /** Answer as text/event-stream: `data: {"content"}` deltas, one `data: {"model","usage"}`, then `data: [DONE]`. */
  @IsOptional()
  @IsBoolean()
  stream?: boolean;
}
