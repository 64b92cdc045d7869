import { ApiProperty } from '@nestjs/swagger';
import { IsInt, IsOptional, IsString, Max, Min, ValidateBy } from 'class-validator';
import { IsModelName } from '../../common/model-name';

export const MAX_EMBEDDING_BATCH = 256;
export const MAX_EMBEDDING_DIMENSIONS = 8_192;
/** About the 8,191-token input limit of OpenAI's embedding models. */
export const MAX_EMBEDDING_INPUT_CHARS = 32_000;

function isEmbeddingInput(value: unknown): boolean {
  const isText = (item: unknown) => typeof item === 'string' && item.length > 0 && item.length <= MAX_EMBEDDING_INPUT_CHARS;
  if (Array.isArray(value)) return value.length > 0 && value.length <= MAX_EMBEDDING_BATCH && value.every(isText);
  return isText(value);
}

export class EmbeddingsRequestDto {
  /** One text, or a batch of texts embedded in one call. */
  @ApiProperty({
    oneOf: [
      { type: 'string', example: 'The quick brown fox', minLength: 1, maxLength: MAX_EMBEDDING_INPUT_CHARS },
      {
        type: 'array',
        items: { type: 'string', minLength: 1, maxLength: MAX_EMBEDDING_INPUT_CHARS },
        minItems: 1,
        maxItems: MAX_EMBEDDING_BATCH,
      },
    ],
  })
  @ValidateBy({
    name: 'isEmbeddingInput',
    validator: {
      validate: isEmbeddingInput,
      defaultMessage: () =>
        `input must be a non-empty string or an array of 1 to ${MAX_EMBEDDING_BATCH} non-empty strings, ` +
        `each at most ${MAX_EMBEDDING_INPUT_CHARS} characters`,
    },
  })
  input!: string | string[];

  /** An embedding model LiteLLM serves; DEFAULT_EMBEDDING_MODEL when absent. */
  @ApiProperty({ required: false, example: 'text-embedding-3-small' })
  @IsOptional()
  @IsModelName()
  @IsString()
  model?: string;

  /** Shorter vectors, for the models that can make them (text-embedding-3); a vector of another length is a 502. */
  @ApiProperty({ required: false, type: 'integer', minimum: 1, maximum: MAX_EMBEDDING_DIMENSIONS, example: 256 })
  @IsOptional()
  @Max(MAX_EMBEDDING_DIMENSIONS)
  @Min(1)
  @IsInt()
  dimensions?: number;
}
