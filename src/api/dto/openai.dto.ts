import { ApiProperty } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  Equals,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateBy,
  ValidateIf,
  ValidateNested,
} from 'class-validator';
import { IsModelName } from '../../common/model-name';
import type { ContentPart, ToolChoice } from '../../litellm/litellm.types';
import {
  IsMessageContent,
  IsStopSequences,
  IsToolChoice,
  JsonSchemaFormatDto,
  MAX_CHAT_MESSAGES,
  MAX_COMPLETION_TOKENS,
  MAX_TOOL_CALLS,
  MAX_TOOLS,
  RESPONSE_FORMAT_TYPES,
  ToolCallDto,
  ToolDto,
} from './chat-shapes';
import { MAX_EMBEDDING_BATCH, MAX_EMBEDDING_DIMENSIONS, MAX_EMBEDDING_INPUT_CHARS } from './embeddings-request.dto';

/**
 * OpenAI's request shapes, as stock SDKs send them (snake_case), for /openai/v1. The same limits as the native
 * routes; the fields OpenAI documents that the gateway cannot honour are refused when they ask for something
 * (`n` > 1, `logprobs`), and taken when they are the default, since SDKs and frameworks send them.
 */

/** `developer` is the newer name of `system`. */
export const OPENAI_ROLES = ['system', 'developer', 'user', 'assistant', 'tool'] as const;

/** `model` value that means "the organization's model" (with an x-organization-id header). */
export const ORGANIZATION_DEFAULT_MODEL = 'organization-default';
const MAX_REFUSAL_CHARS = 32_768;

export class OpenAiMessageDto {
  @ApiProperty({ enum: OPENAI_ROLES, example: 'user' })
  @IsIn(OPENAI_ROLES)
  role!: (typeof OPENAI_ROLES)[number];

  @ApiProperty({ nullable: true, oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'object' } }], example: 'What is the weather in Paris?' })
  @IsMessageContent('image_url')
  content!: string | Array<{ type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string; detail?: 'auto' | 'low' | 'high' } }> | null;

  @ApiProperty({ required: false, type: () => [ToolCallDto], minItems: 1, maxItems: MAX_TOOL_CALLS })
  @IsOptional()
  @ValidateNested({ each: true })
  @Type(() => ToolCallDto)
  @IsObject({ each: true })
  @ArrayMaxSize(MAX_TOOL_CALLS)
  @ArrayMinSize(1)
  @IsArray()
  tool_calls?: ToolCallDto[];

  @IsOptional()
  @Matches(/^[\x21-\x7e]{1,256}$/, { message: '$property must be 1 to 256 printable characters without spaces' })
  @IsString()
  tool_call_id?: string;

  /** A participant's name; accepted, not sent on (not every provider has it). */
  @IsOptional()
  @MaxLength(64)
  @IsString()
  name?: string;

  /** What an SDK echoes back from an assistant answer (`refusal: null`); accepted, not sent on. */
  @IsOptional()
  @MaxLength(MAX_REFUSAL_CHARS)
  @IsString()
  refusal?: string | null;
}

export class OpenAiResponseFormatDto {
  @ApiProperty({ enum: RESPONSE_FORMAT_TYPES })
  @IsIn(RESPONSE_FORMAT_TYPES)
  type!: (typeof RESPONSE_FORMAT_TYPES)[number];

  @ApiProperty({ required: false, type: () => JsonSchemaFormatDto })
  @ValidateIf((format: OpenAiResponseFormatDto) => format.type === 'json_schema' || format.json_schema !== undefined)
  @ValidateNested()
  @Type(() => JsonSchemaFormatDto)
  @IsObject({ message: 'json_schema must be an object: type json_schema needs one, and only it takes one' })
  json_schema?: JsonSchemaFormatDto;
}

export class StreamOptionsDto {
  /** A last chunk with the usage, before [DONE]. */
  @IsOptional()
  @IsBoolean()
  include_usage?: boolean;
}

export class OpenAiChatRequestDto {
  @ApiProperty({ type: () => [OpenAiMessageDto], minItems: 1, maxItems: MAX_CHAT_MESSAGES })
  @ValidateNested({ each: true })
  @Type(() => OpenAiMessageDto)
  @IsObject({ each: true })
  @ArrayMaxSize(MAX_CHAT_MESSAGES)
  @ArrayMinSize(1)
  @IsArray()
  messages!: OpenAiMessageDto[];

  /** A model LiteLLM serves; or `organization-default` with an x-organization-id header: the organization's model. */
  @ApiProperty({ example: 'gpt-4o' })
  @IsModelName()
  @IsString()
  model!: string;

  @IsOptional()
  @Max(2)
  @Min(0)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  temperature?: number;

  @ApiProperty({ required: false, type: 'integer', minimum: 1, maximum: MAX_COMPLETION_TOKENS })
  @IsOptional()
  @Max(MAX_COMPLETION_TOKENS)
  @Min(1)
  @IsInt()
  max_tokens?: number;

  /** OpenAI's newer name for max_tokens; wins when both are given. */
  @ApiProperty({ required: false, type: 'integer', minimum: 1, maximum: MAX_COMPLETION_TOKENS })
  @IsOptional()
  @Max(MAX_COMPLETION_TOKENS)
  @Min(1)
  @IsInt()
  max_completion_tokens?: number;

  @IsOptional()
  @Max(1)
  @Min(0)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  top_p?: number;

  @ApiProperty({ required: false, type: 'integer' })
  @IsOptional()
  @Max(Number.MAX_SAFE_INTEGER)
  @Min(Number.MIN_SAFE_INTEGER)
  @IsInt()
  seed?: number;

  @IsOptional()
  @Max(2)
  @Min(-2)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  presence_penalty?: number;

  @IsOptional()
  @Max(2)
  @Min(-2)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  frequency_penalty?: number;

  @ApiProperty({ required: false, oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, maxItems: 4 }] })
  @IsOptional()
  @IsStopSequences()
  stop?: string | string[];

  @IsOptional()
  @IsBoolean()
  stream?: boolean;

  @IsOptional()
  @ValidateNested()
  @Type(() => StreamOptionsDto)
  @IsObject()
  stream_options?: StreamOptionsDto;

  @ApiProperty({ required: false, type: () => [ToolDto], minItems: 1, maxItems: MAX_TOOLS })
  @IsOptional()
  @ValidateNested({ each: true })
  @Type(() => ToolDto)
  @IsObject({ each: true })
  @ArrayMaxSize(MAX_TOOLS)
  @ArrayMinSize(1)
  @IsArray()
  tools?: ToolDto[];

  @ApiProperty({ required: false, oneOf: [{ type: 'string', enum: ['auto', 'none', 'required'] }, { type: 'object' }] })
  @IsOptional()
  @IsToolChoice()
  tool_choice?: ToolChoice;

  @IsOptional()
  @IsBoolean()
  parallel_tool_calls?: boolean;

  @IsOptional()
  @ValidateNested()
  @Type(() => OpenAiResponseFormatDto)
  @IsObject()
  response_format?: OpenAiResponseFormatDto;

  /** One answer per call: 1 only (the default), as SDKs may send it. */
  @ApiProperty({ required: false, type: 'integer', enum: [1] })
  @IsOptional()
  @Equals(1, { message: 'n must be 1: the gateway answers with one choice' })
  n?: number;

  /** Not offered: false only (the default), as SDKs may send it. */
  @IsOptional()
  @Equals(false, { message: 'logprobs must be false: the gateway does not return log probabilities' })
  logprobs?: boolean;

  /** An end-user id; accepted, not sent on (the gateway's own caller key id is what its records keep). */
  @IsOptional()
  @MaxLength(256)
  @IsString()
  user?: string;
}

/** Text, or a batch of texts; token arrays are not taken. */
const IsOpenAiEmbeddingInput = () =>
  ValidateBy({
    name: 'isEmbeddingInput',
    validator: {
      validate: (value: unknown) => {
        const isText = (item: unknown) => typeof item === 'string' && item.length > 0 && item.length <= MAX_EMBEDDING_INPUT_CHARS;
        return Array.isArray(value) ? value.length > 0 && value.length <= MAX_EMBEDDING_BATCH && value.every(isText) : isText(value);
      },
      defaultMessage: () =>
        `input must be a non-empty string or an array of 1 to ${MAX_EMBEDDING_BATCH} non-empty strings, each at most ${MAX_EMBEDDING_INPUT_CHARS} characters (token arrays are not taken)`,
    },
  });

export class OpenAiEmbeddingsRequestDto {
  @ApiProperty({
    oneOf: [
      { type: 'string', minLength: 1, maxLength: MAX_EMBEDDING_INPUT_CHARS },
      { type: 'array', items: { type: 'string', minLength: 1, maxLength: MAX_EMBEDDING_INPUT_CHARS }, minItems: 1, maxItems: MAX_EMBEDDING_BATCH },
    ],
    example: 'The quick brown fox',
  })
  @IsOpenAiEmbeddingInput()
  input!: string | string[];

  @ApiProperty({ example: 'text-embedding-3-small' })
  @IsModelName()
  @IsString()
  model!: string;

  /** float (the gateway's default) or base64 (little-endian float32, the openai SDKs' default). */
  @IsOptional()
  @IsIn(['float', 'base64'])
  encoding_format?: 'float' | 'base64';

  @ApiProperty({ required: false, type: 'integer', minimum: 1, maximum: MAX_EMBEDDING_DIMENSIONS })
  @IsOptional()
  @Max(MAX_EMBEDDING_DIMENSIONS)
  @Min(1)
  @IsInt()
  dimensions?: number;

  @IsOptional()
  @MaxLength(256)
  @IsString()
  user?: string;
}

export type OpenAiContentPart = Exclude<OpenAiMessageDto['content'], string | null>[number];

/** An OpenAI content part in the gateway's words. */
export function toContentPart(part: OpenAiContentPart): ContentPart {
  return part.type === 'text' ? { type: 'text', text: part.text } : { type: 'image_url', imageUrl: { url: part.image_url.url, ...(part.image_url.detail && { detail: part.image_url.detail }) } };
}
