import { ApiProperty } from '@nestjs/swagger';
import { IsOptional, IsString, MaxLength, MinLength, ValidateBy } from 'class-validator';

export const MAX_EMBEDDING_BATCH = 256;

function isEmbeddingInput(value: unknown): boolean {
  const isText = (item: unknown) => typeof item === 'string' && item.length > 0;
  if (Array.isArray(value)) return value.length > 0 && value.length <= MAX_EMBEDDING_BATCH && value.every(isText);
  return isText(value);
}

export class EmbeddingsRequestDto {
  /** One text, or a batch of texts embedded in one call. */
  @ApiProperty({
    oneOf: [
      { type: 'string', example: 'The quick brown fox' },
      { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: MAX_EMBEDDING_BATCH },
    ],
  })
  @ValidateBy({
    name: 'isEmbeddingInput',
    validator: {
      validate: isEmbeddingInput,
      defaultMessage: () =>
        `input must be a non-empty string or an array of 1 to ${MAX_EMBEDDING_BATCH} non-empty strings`,
    },
  })
  input!: string | string[];

  /** An embedding model LiteLLM serves; DEFAULT_EMBEDDING_MODEL when absent. */
  @ApiProperty({ required: false, example: 'text-embedding-3-small' })
  @IsOptional()
  @MaxLength(200)
  @MinLength(1)
  @IsString()
  model?: string;
}
