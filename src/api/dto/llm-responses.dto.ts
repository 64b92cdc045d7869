import { ApiProperty } from '@nestjs/swagger';
import { ERROR_CODES } from '../../common/errors/gateway-error';
import { ToolCallDto } from './chat-shapes';
import { FINISH_REASONS, FinishReason, TokenUsage } from '../../litellm/litellm.types';

export class TokenUsageDto implements TokenUsage {
  @ApiProperty({ type: 'integer', minimum: 0, example: 12 })
  promptTokens!: number;

  @ApiProperty({ type: 'integer', minimum: 0, example: 30 })
  completionTokens!: number;

  @ApiProperty({ type: 'integer', minimum: 0, example: 42 })
  totalTokens!: number;
}

export class ChatCompletionResultDto {
  /** null when the model only called tools, or refused. */
  @ApiProperty({ nullable: true, type: String, example: 'Requests flow in, / one door for every model, / answers flow back out.' })
  content!: string | null;

  /** The tools the model called; arguments are JSON text. */
  @ApiProperty({ required: false, type: () => [ToolCallDto] })
  toolCalls?: ToolCallDto[];

  /** The model the gateway asked LiteLLM for (also in the x-llm-model header). */
  @ApiProperty({ example: 'gpt-4o' })
  model!: string;

  /** The model the provider reported serving, when it reported one. */
  @ApiProperty({ required: false, example: 'gpt-4o-2024-08-06' })
  upstreamModel?: string;

  /** Zeros when the upstream reported none. */
  usage!: TokenUsageDto;

  /** Why the model stopped. */
  @ApiProperty({ required: false, enum: FINISH_REASONS, example: 'stop' })
  finishReason?: FinishReason;
}

export class OrgChatCompletionResultDto extends ChatCompletionResultDto {
  /** True when the organization's fallback model served the call. */
  fallbackUsed!: boolean;

  /** The primary model's error code, when the fallback served the call (also in x-llm-fallback-reason). */
  @ApiProperty({ required: false, enum: Object.keys(ERROR_CODES), example: 'MODEL_NOT_FOUND' })
  fallbackReason?: string;
}

export class EmbeddingResultDto {
  @ApiProperty({ type: [Number], example: [0.0123, -0.0456, 0.0789] })
  embedding!: number[];

  @ApiProperty({ example: 'text-embedding-3-small' })
  model!: string;

  @ApiProperty({ required: false, example: 'text-embedding-3-small' })
  upstreamModel?: string;

  @ApiProperty({ type: 'integer', minimum: 1, example: 1536 })
  dimensions!: number;

  usage!: TokenUsageDto;
}

export class EmbeddingBatchResultDto {
  @ApiProperty({ type: 'array', items: { type: 'array', items: { type: 'number' } } })
  embeddings!: number[][];

  @ApiProperty({ example: 'text-embedding-3-small' })
  model!: string;

  @ApiProperty({ required: false, example: 'text-embedding-3-small' })
  upstreamModel?: string;

  @ApiProperty({ type: 'integer', minimum: 1, example: 1536 })
  dimensions!: number;

  usage!: TokenUsageDto;
}

export class ModelListDto {
  /** Model names LiteLLM serves, usable as `model` in requests. */
  @ApiProperty({ example: ['claude-3-5-sonnet', 'gpt-4o', 'text-embedding-3-small'] })
  models!: string[];
}
