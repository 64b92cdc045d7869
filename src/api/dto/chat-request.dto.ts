import { ApiProperty, getSchemaPath } from '@nestjs/swagger';
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
  Matches,
  Max,
  Min,
  ValidateIf,
  ValidateNested,
} from 'class-validator';
import { IsModelName } from '../../common/model-name';
import { CHAT_ROLES, ChatRole, ContentPart, ToolChoice } from '../../litellm/litellm.types';
import {
  IsMessageContent,
  RESPONSE_FORMAT_TYPES,
  IsStopSequences,
  IsToolChoice,
  JsonSchemaFormatDto,
  MAX_CHAT_MESSAGES,
  MAX_COMPLETION_TOKENS,
  MAX_TOOL_CALLS,
  MAX_TOOLS,
  ToolCallDto,
  ToolDto,
} from './chat-shapes';

export { MAX_CHAT_MESSAGES, MAX_COMPLETION_TOKENS };
export { MAX_MESSAGE_CHARS } from './chat-shapes';

// class-validator runs a property's decorators bottom-up and the pipe stops at the first failure, so the
// type check sits closest to the property: a missing field is reported as missing, not as too long.

export class ChatMessageDto {
  @ApiProperty({ enum: CHAT_ROLES, example: 'user' })
  @IsIn(CHAT_ROLES)
  role!: ChatRole;

  /** Text; or parts: `{type: "text", text}` and, in user messages, `{type: "image_url", imageUrl: {url, detail?}}` (https or data:image/...;base64); null only beside `toolCalls`. */
  @ApiProperty({
    nullable: true,
    oneOf: [
      { type: 'string', maxLength: 100_000 },
      {
        type: 'array',
        maxItems: 64,
        items: {
          oneOf: [
            { type: 'object', properties: { type: { enum: ['text'] }, text: { type: 'string' } }, required: ['type', 'text'] },
            {
              type: 'object',
              properties: {
                type: { enum: ['image_url'] },
                imageUrl: { type: 'object', properties: { url: { type: 'string' }, detail: { enum: ['auto', 'low', 'high'] } }, required: ['url'] },
              },
              required: ['type', 'imageUrl'],
            },
          ],
        },
      },
    ],
    example: 'Write a haiku about gateways.',
  })
  @IsMessageContent('imageUrl')
  content!: string | ContentPart[] | null;

  /** Assistant messages: the tools the model called. */
  @ApiProperty({ required: false, type: () => [ToolCallDto], minItems: 1, maxItems: MAX_TOOL_CALLS })
  @IsOptional()
  @ValidateNested({ each: true })
  @Type(() => ToolCallDto)
  @IsObject({ each: true })
  @ArrayMaxSize(MAX_TOOL_CALLS)
  @ArrayMinSize(1)
  @IsArray()
  toolCalls?: ToolCallDto[];

  /** Tool messages: the id of the call this is the result of. */
  @ApiProperty({ required: false, example: 'call_0123abcd' })
  @IsOptional()
  @Matches(/^[\x21-\x7e]{1,256}$/, { message: '$property must be 1 to 256 printable characters without spaces' })
  @IsString()
  toolCallId?: string;
}

/** `{type: "text"}`, `{type: "json_object"}`, or `{type: "json_schema", jsonSchema: {name, schema?, strict?, description?}}`. */
export class ResponseFormatDto {
  @ApiProperty({ enum: RESPONSE_FORMAT_TYPES, example: 'json_object' })
  @IsIn(RESPONSE_FORMAT_TYPES)
  type!: (typeof RESPONSE_FORMAT_TYPES)[number];

  /** Required with type json_schema, and only there. */
  @ApiProperty({ required: false, type: () => JsonSchemaFormatDto })
  @ValidateIf((format: ResponseFormatDto) => format.type === 'json_schema' || format.jsonSchema !== undefined)
  @ValidateNested()
  @Type(() => JsonSchemaFormatDto)
  @IsObject({ message: 'jsonSchema must be an object: type json_schema needs one, and only it takes one' })
  jsonSchema?: JsonSchemaFormatDto;
}

export class ChatRequestDto {
  /** The conversation so far, oldest first. */
  @ApiProperty({ type: () => [ChatMessageDto], minItems: 1, maxItems: MAX_CHAT_MESSAGES })
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
  @ApiProperty({ required: false, minimum: 0, maximum: 2, example: 0.2 })
  @IsOptional()
  @Max(2)
  @Min(0)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  temperature?: number;

  /** Upper bound on the completion's tokens. */
  @ApiProperty({ required: false, type: 'integer', minimum: 1, maximum: MAX_COMPLETION_TOKENS, example: 200 })
  @IsOptional()
  @Max(MAX_COMPLETION_TOKENS)
  @Min(1)
  @IsInt()
  maxTokens?: number;

  /** Answer as text/event-stream: `data: {"content"}` and `data: {"toolCalls"}` deltas, one closing `data: {"model","usage","finishReason",...}`, then `data: [DONE]`. */
  @ApiProperty({ required: false, default: false, example: false })
  @IsOptional()
  @IsBoolean()
  stream?: boolean;

  /** Functions the model may call. */
  @ApiProperty({ required: false, type: () => [ToolDto], minItems: 1, maxItems: MAX_TOOLS })
  @IsOptional()
  @ValidateNested({ each: true })
  @Type(() => ToolDto)
  @IsObject({ each: true })
  @ArrayMaxSize(MAX_TOOLS)
  @ArrayMinSize(1)
  @IsArray()
  tools?: ToolDto[];

  /** "auto", "none", "required", or {"type":"function","function":{"name"}}. */
  @ApiProperty({
    required: false,
    oneOf: [{ type: 'string', enum: ['auto', 'none', 'required'] }, { type: 'object', properties: { type: { enum: ['function'] }, function: { type: 'object', properties: { name: { type: 'string' } } } } }],
  })
  @IsOptional()
  @IsToolChoice()
  toolChoice?: ToolChoice;

  @IsOptional()
  @IsBoolean()
  parallelToolCalls?: boolean;

  /** JSON answers: json_object, or json_schema with a schema; a plain answer that is not JSON is then a 502. */
  @IsOptional()
  @ValidateNested()
  @Type(() => ResponseFormatDto)
  @IsObject()
  responseFormat?: ResponseFormatDto;

  /** One stop sequence, or up to 4. */
  @ApiProperty({ required: false, oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, maxItems: 4 }] })
  @IsOptional()
  @IsStopSequences()
  stop?: string | string[];

  @ApiProperty({ required: false, minimum: 0, maximum: 1 })
  @IsOptional()
  @Max(1)
  @Min(0)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  topP?: number;

  @ApiProperty({ required: false, type: 'integer' })
  @IsOptional()
  @Max(Number.MAX_SAFE_INTEGER)
  @Min(Number.MIN_SAFE_INTEGER)
  @IsInt()
  seed?: number;

  @ApiProperty({ required: false, minimum: -2, maximum: 2 })
  @IsOptional()
  @Max(2)
  @Min(-2)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  presencePenalty?: number;

  @ApiProperty({ required: false, minimum: -2, maximum: 2 })
  @IsOptional()
  @Max(2)
  @Min(-2)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  frequencyPenalty?: number;
}

export const CHAT_REQUEST_SCHEMA = getSchemaPath(ChatRequestDto);
