import { ApiProperty } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { Equals, IsBoolean, IsObject, IsOptional, IsString, Matches, MaxLength, MinLength, ValidateBy, ValidateNested, ValidationArguments } from 'class-validator';
import { GatewayError } from '../../common/errors/gateway-error';
import { ChatMessage, IMAGE_DETAILS, ResponseFormat, ToolCall, ToolDefinition } from '../../litellm/litellm.types';

/**
 * What the native and the OpenAI-compatible chat requests share: tools, tool calls, their limits, and the checks
 * of a conversation as a whole. Each limit, when broken, is a 400 that names it.
 */
export const MAX_CHAT_MESSAGES = 256;
export const MAX_MESSAGE_CHARS = 100_000;
export const MAX_COMPLETION_TOKENS = 32_768;
export const MAX_CONTENT_PARTS = 64;
export const MAX_TOOLS = 128;
export const MAX_TOOL_CALLS = 128;
export const MAX_TOOL_DESCRIPTION_CHARS = 4_096;
export const MAX_TOOL_ARGUMENTS_CHARS = 100_000;
/** A JSON Schema (tool parameters, a response format's schema): its size as JSON text, and how deep it nests. */
export const MAX_SCHEMA_CHARS = 32_768;
export const MAX_SCHEMA_DEPTH = 16;
export const MAX_STOP_SEQUENCES = 4;
export const MAX_STOP_CHARS = 256;
/** An image as a data: URI: about 3.7 MB of image; BODY_LIMIT_BYTES caps the whole request below that by default. */
export const MAX_IMAGE_DATA_URI_CHARS = 5_000_000;
export const MAX_IMAGE_URL_CHARS = 8_192;

/** OpenAI's rule for function names (and json_schema names). */
export const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const TOOL_CALL_ID = /^[\x21-\x7e]{1,256}$/;

function depthOf(value: unknown): number {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 1 }];
  let deepest = 0;
  while (stack.length > 0) {
    const { value: current, depth } = stack.pop()!;
    if (current === null || typeof current !== 'object') continue;
    deepest = Math.max(deepest, depth);
    for (const child of Object.values(current)) stack.push({ value: child, depth: depth + 1 });
  }
  return deepest;
}

/** A JSON Schema object of bounded size and depth; what it says is for the model and LiteLLM to read. */
export const IsBoundedSchema = () =>
  ValidateBy({
    name: 'isBoundedSchema',
    validator: {
      validate: (value: unknown) =>
        typeof value === 'object' && value !== null && !Array.isArray(value) && JSON.stringify(value).length <= MAX_SCHEMA_CHARS && depthOf(value) <= MAX_SCHEMA_DEPTH,
      defaultMessage: ({ property }: ValidationArguments) =>
        `${property} must be a JSON Schema object of at most ${MAX_SCHEMA_CHARS} characters, nested at most ${MAX_SCHEMA_DEPTH} levels`,
    },
  });

/** Function-call arguments: the JSON object the model wrote, as text. */
export const IsArgumentsJson = () =>
  ValidateBy({
    name: 'isArgumentsJson',
    validator: {
      validate: (value: unknown) => {
        if (typeof value !== 'string' || value.length > MAX_TOOL_ARGUMENTS_CHARS) return false;
        try {
          const parsed: unknown = JSON.parse(value);
          return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
        } catch {
          return false;
        }
      },
      defaultMessage: ({ property }: ValidationArguments) => `${property} must be a JSON object as text, at most ${MAX_TOOL_ARGUMENTS_CHARS} characters`,
    },
  });

/** `stop`: one sequence, or up to MAX_STOP_SEQUENCES. */
export const IsStopSequences = () =>
  ValidateBy({
    name: 'isStopSequences',
    validator: {
      validate: (value: unknown) => {
        const isSequence = (item: unknown) => typeof item === 'string' && item.length > 0 && item.length <= MAX_STOP_CHARS;
        return Array.isArray(value) ? value.length > 0 && value.length <= MAX_STOP_SEQUENCES && value.every(isSequence) : isSequence(value);
      },
      defaultMessage: ({ property }: ValidationArguments) =>
        `${property} must be a string or an array of 1 to ${MAX_STOP_SEQUENCES} strings, each 1 to ${MAX_STOP_CHARS} characters`,
    },
  });

const IMAGE_DATA_URI = /^data:image\/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+={0,2}$/;

/** An image the provider may fetch (https) or inline (a data: URI); never http:, which LiteLLM would fetch itself. */
function imageUrlProblem(url: unknown): string | undefined {
  if (typeof url !== 'string') return 'must be a string';
  if (url.startsWith('data:')) {
    if (url.length > MAX_IMAGE_DATA_URI_CHARS) return `must be at most ${MAX_IMAGE_DATA_URI_CHARS} characters as a data: URI`;
    return IMAGE_DATA_URI.test(url) ? undefined : 'must be a data:image/(png|jpeg|gif|webp);base64,... URI';
  }
  if (url.length > MAX_IMAGE_URL_CHARS) return `must be at most ${MAX_IMAGE_URL_CHARS} characters`;
  try {
    if (new URL(url).protocol === 'https:') return undefined;
  } catch {
    // falls through
  }
  return 'must be an https URL or a data:image/...;base64 URI';
}

/**
 * A message's content: text, or parts (`text`, and `image_url` whose key is `imageUrl` natively and `image_url`
 * in OpenAI's format), or null. Checked here by hand, as class-validator has no unions; unknown keys refused.
 */
export function IsMessageContent(imageKey: 'imageUrl' | 'image_url') {
  const problemOf = (value: unknown): string | undefined => {
    if (value === null || value === undefined) return undefined;
    if (typeof value === 'string') return value.length <= MAX_MESSAGE_CHARS ? undefined : `must be at most ${MAX_MESSAGE_CHARS} characters`;
    if (!Array.isArray(value)) return 'must be a string, an array of parts, or null';
    if (value.length === 0 || value.length > MAX_CONTENT_PARTS) return `must have 1 to ${MAX_CONTENT_PARTS} parts`;
    for (const [index, part] of value.entries()) {
      const at = `.${index}`;
      if (typeof part !== 'object' || part === null || Array.isArray(part)) return `${at} must be an object`;
      const { type } = part as { type?: unknown };
      if (type === 'text') {
        const extra = Object.keys(part).find((key) => key !== 'type' && key !== 'text');
        if (extra) return `${at}.${extra}: property ${extra} should not exist`;
        const text = (part as { text?: unknown }).text;
        if (typeof text !== 'string' || text.length > MAX_MESSAGE_CHARS) return `${at}.text must be a string of at most ${MAX_MESSAGE_CHARS} characters`;
      } else if (type === 'image_url') {
        const extra = Object.keys(part).find((key) => key !== 'type' && key !== imageKey);
        if (extra) return `${at}.${extra}: property ${extra} should not exist`;
        const image = (part as Record<string, unknown>)[imageKey];
        if (typeof image !== 'object' || image === null) return `${at}.${imageKey} must be an object with a url`;
        const imageExtra = Object.keys(image).find((key) => key !== 'url' && key !== 'detail');
        if (imageExtra) return `${at}.${imageKey}.${imageExtra}: property ${imageExtra} should not exist`;
        const { url, detail } = image as { url?: unknown; detail?: unknown };
        const urlProblem = imageUrlProblem(url);
        if (urlProblem) return `${at}.${imageKey}.url ${urlProblem}`;
        if (detail !== undefined && !(IMAGE_DETAILS as readonly unknown[]).includes(detail)) {
          return `${at}.${imageKey}.detail must be one of the following values: ${IMAGE_DETAILS.join(', ')}`;
        }
      } else {
        return `${at}.type must be one of the following values: text, image_url`;
      }
    }
    return undefined;
  };
  return ValidateBy({
    name: 'isMessageContent',
    validator: {
      validate: (value: unknown) => problemOf(value) === undefined,
      defaultMessage: ({ property, value }: ValidationArguments) => `${property}${problemOf(value)?.replace(/^(?!\.)/, ' ') ?? ' is invalid'}`,
    },
  });
}

export class FunctionCallDto {
  @ApiProperty({ example: 'get_weather', pattern: FUNCTION_NAME.source })
  @Matches(FUNCTION_NAME, { message: '$property must be 1 to 64 letters, digits, _ or -' })
  @IsString()
  name!: string;

  /** The arguments as a JSON object, in text. */
  @ApiProperty({ example: '{"city":"Paris"}', maxLength: MAX_TOOL_ARGUMENTS_CHARS })
  @IsArgumentsJson()
  @IsString()
  arguments!: string;
}

/** A tool the model called (in an assistant message of the conversation so far). Same shape in both surfaces. */
export class ToolCallDto {
  @ApiProperty({ example: 'call_0123abcd' })
  @Matches(TOOL_CALL_ID, { message: '$property must be 1 to 256 printable characters without spaces' })
  @IsString()
  id!: string;

  @ApiProperty({ enum: ['function'] })
  @Equals('function')
  type!: 'function';

  @ValidateNested()
  @Type(() => FunctionCallDto)
  @IsObject()
  function!: FunctionCallDto;
}

export class FunctionDefinitionDto {
  @ApiProperty({ example: 'get_weather', pattern: FUNCTION_NAME.source })
  @Matches(FUNCTION_NAME, { message: '$property must be 1 to 64 letters, digits, _ or -' })
  @IsString()
  name!: string;

  @ApiProperty({ required: false, example: 'The current weather in a city', maxLength: MAX_TOOL_DESCRIPTION_CHARS })
  @IsOptional()
  @MaxLength(MAX_TOOL_DESCRIPTION_CHARS)
  @IsString()
  description?: string;

  /** A JSON Schema for the arguments. */
  @ApiProperty({ required: false, type: Object, additionalProperties: true, example: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } })
  @IsOptional()
  @IsBoundedSchema()
  parameters?: Record<string, unknown>;

  @IsOptional()
  @IsBoolean()
  strict?: boolean;
}

/** A tool the model may call. Same shape in both surfaces. */
export class ToolDto {
  @ApiProperty({ enum: ['function'] })
  @Equals('function')
  type!: 'function';

  @ValidateNested()
  @Type(() => FunctionDefinitionDto)
  @IsObject()
  function!: FunctionDefinitionDto;
}

/** `toolChoice` / `tool_choice`: auto, none, required, or one named function. */
export const IsToolChoice = () =>
  ValidateBy({
    name: 'isToolChoice',
    validator: {
      validate: (value: unknown) => {
        if (value === 'auto' || value === 'none' || value === 'required') return true;
        if (typeof value !== 'object' || value === null) return false;
        const { type, function: fn, ...rest } = value as { type?: unknown; function?: { name?: unknown } };
        return type === 'function' && Object.keys(rest).length === 0 && typeof fn === 'object' && fn !== null && Object.keys(fn).length === 1 && typeof fn.name === 'string' && FUNCTION_NAME.test(fn.name);
      },
      defaultMessage: ({ property }: ValidationArguments) => `${property} must be "auto", "none", "required" or {"type":"function","function":{"name":"..."}}`,
    },
  });

export class JsonSchemaFormatDto {
  @ApiProperty({ example: 'weather_report', pattern: FUNCTION_NAME.source })
  @Matches(FUNCTION_NAME, { message: '$property must be 1 to 64 letters, digits, _ or -' })
  @IsString()
  name!: string;

  @IsOptional()
  @MaxLength(MAX_TOOL_DESCRIPTION_CHARS)
  @IsString()
  description?: string;

  @ApiProperty({ required: false, type: Object, additionalProperties: true })
  @IsOptional()
  @IsBoundedSchema()
  schema?: Record<string, unknown>;

  @IsOptional()
  @IsBoolean()
  strict?: boolean;
}

export const RESPONSE_FORMAT_TYPES = ['text', 'json_object', 'json_schema'] as const;

/** An assistant message's tool calls as the pipeline takes them, field by field. */
export function toToolCalls(calls: ToolCallDto[]): ToolCall[] {
  return calls.map(({ id, function: { name, arguments: args } }) => ({ id, type: 'function' as const, function: { name, arguments: args } }));
}

/** The tools as the pipeline takes them, field by field; null in an optional field means "not given". */
export function toToolDefinitions(tools: ToolDto[] | undefined): ToolDefinition[] | undefined {
  return tools?.map(({ function: { name, description, parameters, strict } }) => ({
    type: 'function' as const,
    function: { name, description: description ?? undefined, parameters: parameters ?? undefined, strict: strict ?? undefined },
  }));
}

/** A response format as the pipeline takes it: the schema only with json_schema (the DTOs refuse it elsewhere). */
export function toResponseFormat(type: (typeof RESPONSE_FORMAT_TYPES)[number], jsonSchema: JsonSchemaFormatDto | undefined): ResponseFormat {
  return type === 'json_schema' ? { type, jsonSchema: { ...jsonSchema! } } : { type };
}

function fail(message: string): never {
  throw new GatewayError('VALIDATION_FAILED', message);
}

/**
 * The checks a conversation needs as a whole, after each field passed on its own: who may carry what, and that
 * every tool result answers a call made before it. Field names as the caller wrote them (`names`).
 */
export function checkConversation(
  messages: ChatMessage[],
  tools: Array<{ function: { name: string } }> | undefined,
  toolChoice: unknown,
  names: { toolCalls: string; toolCallId: string; toolChoice: string },
): void {
  const calledIds = new Set<string>();
  for (const [index, message] of messages.entries()) {
    const at = `messages.${index}`;
    const { role, content, toolCalls, toolCallId } = message;
    if (toolCalls && role !== 'assistant') fail(`${at}.${names.toolCalls}: only assistant messages carry tool calls`);
    if (toolCallId !== undefined && role !== 'tool') fail(`${at}.${names.toolCallId}: only tool messages carry a tool call id`);
    if (content === null && !(role === 'assistant' && toolCalls?.length)) fail(`${at}.content must not be null (only an assistant message with tool calls may have none)`);
    if (Array.isArray(content) && role !== 'user' && content.some((part) => part.type !== 'text')) fail(`${at}.content: only user messages may carry images`);
    if (toolCalls && toolCalls.length > MAX_TOOL_CALLS) fail(`${at}.${names.toolCalls} must contain no more than ${MAX_TOOL_CALLS} elements`);
    for (const call of toolCalls ?? []) {
      if (calledIds.has(call.id)) fail(`${at}.${names.toolCalls}: the id ${call.id} is used twice`);
      calledIds.add(call.id);
    }
    if (role === 'tool') {
      if (toolCallId === undefined) fail(`${at}.${names.toolCallId} is required in a tool message`);
      if (!calledIds.has(toolCallId)) fail(`${at}.${names.toolCallId} ${toolCallId} answers no tool call made before it`);
    }
  }
  if (toolChoice !== undefined && !tools?.length) fail(`${names.toolChoice} needs tools`);
  if (typeof toolChoice === 'object' && toolChoice !== null) {
    const name = (toolChoice as { function: { name: string } }).function.name;
    if (!tools?.some((tool) => tool.function.name === name)) fail(`${names.toolChoice} names ${name}, which is not among the tools`);
  }
  const names_ = tools?.map((tool) => tool.function.name) ?? [];
  const twice = names_.find((name, position) => names_.indexOf(name) !== position);
  if (twice) fail(`tools: the function ${twice} is defined twice`);
}
