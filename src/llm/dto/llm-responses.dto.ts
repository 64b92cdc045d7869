import { ApiProperty } from '@nestjs/swagger';
import { ChatCompletionResult, EmbeddingBatchResult, EmbeddingResult, OrgChatCompletionResult, TokenUsage } from '../llm.types';

export class TokenUsageDto implements TokenUsage {
  @ApiProperty({ example: 12 })
  promptTokens!: number;

  @ApiProperty({ example: 30 })
  completionTokens!: number;

  @ApiProperty({ example: 42 })
  totalTokens!: number;
}

export class ChatCompletionResultDto implements ChatCompletionResult {
  @ApiProperty({ example: 'Requests flow in, / one door for every model, / answers flow back out.' })
  content!: string;

  /** The model that served the call. */
  @ApiProperty({ example: 'gpt-4o' })
  model!: string;

  usage!: TokenUsageDto;
}

export class OrgChatCompletionResultDto extends ChatCompletionResultDto implements OrgChatCompletionResult {
  /** True when the organization's fallback model served the call. */
  fallbackUsed!: boolean;

  /** The primary model's error code, when the fallback served the call. */
  @ApiProperty({ required: false, example: 'MODEL_NOT_FOUND' })
  fallbackReason?: string;
}

export class EmbeddingResultDto implements EmbeddingResult {
  @ApiProperty({ type: [Number], example: [0.0123, -0.0456, 0.0789] })
  embedding!: number[];

  @ApiProperty({ example: 'text-embedding-3-small' })
  model!: string;

  @ApiProperty({ example: 1536 })
  dimensions!: number;
}

export class EmbeddingBatchResultDto implements EmbeddingBatchResult {
  @ApiProperty({ type: 'array', items: { type: 'array', items: { type: 'number' } } })
  embeddings!: number[][];

  @ApiProperty({ example: 'text-embedding-3-small' })
  model!: string;

  @ApiProperty({ example: 1536 })
  dimensions!: number;
}

export class ModelListDto {
  /** Model names LiteLLM serves, usable as `model` in requests. */
  @ApiProperty({ example: ['claude-3-5-sonnet', 'gpt-4o', 'text-embedding-3-small'] })
  models!: string[];
}
