import 'reflect-metadata';
import { applyDecorators } from '@nestjs/common';
import { existsSync } from 'node:fs';
import { plainToInstance, Transform } from 'class-transformer';
import { IsModelName } from '../common/model-name';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  Max,
  Min,
  MinLength,
  validateSync,
} from 'class-validator';

const NODE_ENVS = ['development', 'production', 'test'] as const;
export type NodeEnv = (typeof NODE_ENVS)[number];

/** pino's levels, most severe first: LOG_LEVEL keeps its own level and everything above it. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LIMITS_FAIL_MODES = ['open', 'closed'] as const;
export type LimitsFailMode = (typeof LIMITS_FAIL_MODES)[number];

export const BUDGET_PERIODS = ['day', 'month'] as const;
export type BudgetPeriod = (typeof BUDGET_PERIODS)[number];

/** What an operator should know about a valid configuration, logged once the logger exists. */
export function configurationWarnings(raw: Record<string, unknown>, env: Environment): string[] {
  const warnings: string[] = [];
  if (!env.GATEWAY_API_KEYS && !env.GATEWAY_ADMIN_API_KEYS) {
    warnings.push('GATEWAY_API_KEYS and GATEWAY_ADMIN_API_KEYS are not set: caller authentication is OFF. Never run so in a shared environment.');
  }
  if (!raw.LITELLM_API_KEY && env.NODE_ENV !== 'production') {
    warnings.push('LITELLM_API_KEY is not set: using the development key of `npm run litellm`. Set it in any shared environment.');
  }
  return warnings;
}

/** Used only outside production, so `npm start` works against `npm run litellm` with no setup. */
export const DEVELOPMENT_LITELLM_API_KEY = 'sk-llm-gateway-dev';

/**
 * Every environment variable the gateway reads, with its default.
 * Validated once at boot; the rest of the code reads it through ConfigService.
 */
function parseBoolean(value: unknown): unknown {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  return value;
}

/** true/false/1/0 from the environment's strings; anything else is reported as not a boolean. */
const IsBooleanFlag = () =>
  applyDecorators(
    Transform(({ obj, key }) => parseBoolean(obj[key])),
    IsBoolean(),
  );

export class Environment {
  @IsIn(NODE_ENVS)
  NODE_ENV: NodeEnv = 'development';

  @IsInt()
  @Min(1)
  @Max(65535)
  PORT: number = 3000;

  @IsString()
  HOST: string = '0.0.0.0';

  @IsIn(LOG_LEVELS)
  LOG_LEVEL: LogLevel = 'info';

  @IsUrl({ require_tld: false, protocols: ['http', 'https'], require_protocol: true })
  LITELLM_URL: string = 'http://localhost:4000';

  @IsOptional()
  @IsString()
  @MinLength(1)
  LITELLM_API_KEY?: string;

  /** The whole plain answer, or a stream's first byte, must come within this. */
  @IsInt()
  @Min(100)
  @Max(600_000)
  LLM_TIMEOUT_MS: number = 60_000;

  @IsInt()
  @Min(0)
  @Max(5)
  LLM_MAX_RETRIES: number = 0;

  /** Once a stream has started: the longest silence from LiteLLM before the stream is ended as timed out. */
  @IsInt()
  @Min(100)
  @Max(600_000)
  LLM_STREAM_IDLE_TIMEOUT_MS: number = 60_000;

  /** Once a stream has started: how long a caller that stops reading may hold it before it is cut. */
  @IsInt()
  @Min(100)
  @Max(600_000)
  STREAM_WRITE_TIMEOUT_MS: number = 60_000;

  /** How long an idle connection to LiteLLM is kept: below LiteLLM's own (uvicorn: 5 s), or calls meet closing sockets. */
  @IsInt()
  @Min(100)
  @Max(300_000)
  LITELLM_KEEP_ALIVE_TIMEOUT_MS: number = 4_000;

  /**
   * Connections to LiteLLM at once; a call beyond them waits for one. A stream holds its connection for its
   * whole length, so this is the number of concurrent streams (and calls) one replica can have in flight.
   */
  @IsInt()
  @Min(1)
  @Max(65_536)
  LITELLM_MAX_CONNECTIONS: number = 4_096;

  /** Fall back to an organization's fallback model when the provider's content policy refused the prompt. */
  @IsBooleanFlag()
  FALLBACK_ON_CONTENT_POLICY: boolean = false;

  @IsModelName()
  DEFAULT_CHAT_MODEL: string = 'gpt-4o';

  @IsModelName()
  DEFAULT_EMBEDDING_MODEL: string = 'text-embedding-3-small';

  @IsInt()
  @Min(1024)
  BODY_LIMIT_BYTES: number = 1_048_576;

  @IsInt()
  @Min(0)
  MODELS_CACHE_TTL_MS: number = 30_000;

  /** A PostgreSQL server. Unset: an embedded PostgreSQL (PGlite) stored in DATA_DIR. */
  @IsOptional()
  @Matches(/^postgres(ql)?:\/\/\S+$/, { message: 'DATABASE_URL must be a postgres:// or postgresql:// URL' })
  DATABASE_URL?: string;

  @IsString()
  @MinLength(1)
  DATA_DIR: string = './.data';

  /** Apply pending migrations at boot. */
  @IsBooleanFlag()
  MIGRATIONS_RUN: boolean = true;

  /** With NODE_ENV=production, run on the embedded database when DATABASE_URL is unset, rather than refuse to start. */
  @IsBooleanFlag()
  ALLOW_EMBEDDED_DATABASE: boolean = false;

  /** How long an organization's model preferences are served from memory. */
  @IsInt()
  @Min(0)
  ORG_CACHE_TTL_MS: number = 30_000;

  /** Readiness also requires LiteLLM (right for a sidecar; false where LiteLLM is a shared service). */
  @IsBooleanFlag()
  HEALTH_READY_INCLUDE_LITELLM: boolean = true;

  /** Time allowed to each dependency check of a health probe. */
  @IsInt()
  @Min(50)
  HEALTH_CHECK_TIMEOUT_MS: number = 1_000;

  /** After SIGTERM: how long the server keeps serving, readiness failing, before it stops accepting. */
  @IsInt()
  @Min(0)
  SHUTDOWN_DRAIN_MS: number = 5_000;

  /** After the drain: how long open streams may go on before they are ended with an error event. */
  @IsInt()
  @Min(0)
  SHUTDOWN_STREAM_TIMEOUT_MS: number = 20_000;

  /** Keep a usage record per upstream attempt. Off only to measure its cost, or where nothing is billed: budgets read it. */
  @IsBooleanFlag()
  USAGE_LEDGER_ENABLED: boolean = true;

  /** The usage ledger writes its buffered records this often (ms). */
  @IsInt()
  @Min(50)
  @Max(60_000)
  USAGE_FLUSH_INTERVAL_MS: number = 1_000;

  /** Records per INSERT; a full batch is written at once, without waiting for the interval. */
  @IsInt()
  @Min(1)
  @Max(5_000)
  USAGE_BATCH_SIZE: number = 500;

  /** While the database is unreachable, records kept in memory; past this many they spill to a file under DATA_DIR. */
  @IsInt()
  @Min(100)
  USAGE_BUFFER_MAX: number = 10_000;

  /** Usage records older than this are deleted. */
  @IsInt()
  @Min(1)
  @Max(3_650)
  USAGE_RETENTION_DAYS: number = 400;

  @IsBooleanFlag()
  METRICS_ENABLED: boolean = true;

  /** Keys callers may use for the model routes and to read organizations; comma-separated. */
  @IsOptional()
  @IsString()
  GATEWAY_API_KEYS?: string;

  /** Keys that may also create, change and delete organizations; comma-separated. */
  @IsOptional()
  @IsString()
  GATEWAY_ADMIN_API_KEYS?: string;

  /** Longest time a client may take to send a whole request (a slow client cannot hold a connection). */
  @IsInt()
  @Min(1_000)
  REQUEST_TIMEOUT_MS: number = 30_000;

  /** Swagger UI at /docs and the document at /docs-json. Default: on, except in production. */
  @IsOptional()
  @IsBooleanFlag()
  SWAGGER_ENABLED?: boolean;

  /** The Redis every replica shares rate limits and budgets through. Unset: limits kept in this process's memory. */
  @IsOptional()
  @Matches(/^rediss?:\/\/\S+$/, { message: 'REDIS_URL must be a redis:// or rediss:// URL' })
  REDIS_URL?: string;

  /** When Redis cannot be reached: admit calls unchecked (open) or refuse them with 503 LIMITS_UNAVAILABLE (closed). */
  @IsIn(LIMITS_FAIL_MODES)
  LIMITS_FAIL_MODE: LimitsFailMode = 'open';

  /** Requests per minute allowed to each caller key. Unset: unlimited. */
  @IsOptional()
  @IsInt()
  @Min(0)
  GATEWAY_KEY_REQUESTS_PER_MINUTE?: number;

  /** The completion tokens a call that names no maxTokens is assumed to use, in its token estimate. */
  @IsInt()
  @Min(1)
  LIMITS_DEFAULT_MAX_TOKENS: number = 4_096;

  /**
   * How long a call holds its concurrency slot and budget reservation if it never finishes (its replica died).
   * Longer than the longest call: LLM_TIMEOUT_MS is at most 10 minutes.
   */
  @IsInt()
  @Min(10_000)
  @Max(86_400_000)
  LIMITS_SLOT_LEASE_MS: number = 600_000;

  /** Limits of new organizations. Unset: unlimited. */
  @IsOptional()
  @IsInt()
  @Min(0)
  LIMITS_DEFAULT_REQUESTS_PER_MINUTE?: number;

  @IsOptional()
  @IsInt()
  @Min(0)
  LIMITS_DEFAULT_TOKENS_PER_MINUTE?: number;

  @IsOptional()
  @IsInt()
  @Min(0)
  LIMITS_DEFAULT_CONCURRENT_REQUESTS?: number;

  @IsOptional()
  @IsInt()
  @Min(0)
  LIMITS_DEFAULT_TOKEN_BUDGET?: number;

  @IsIn(BUDGET_PERIODS)
  LIMITS_DEFAULT_BUDGET_PERIOD: BudgetPeriod = 'month';
}

const SECRET_NAME = /_KEYS?$|SECRET|PASSWORD|DATABASE_URL|REDIS_URL/;
const MIN_CALLER_KEY_LENGTH = 16;

/** What the database needs, and all the migration CLI reads: it must run where the gateway's secrets are not. */
export const DATABASE_SETTINGS = ['NODE_ENV', 'DATABASE_URL', 'DATA_DIR', 'MIGRATIONS_RUN', 'ALLOW_EMBEDDED_DATABASE'] as const;
export type DatabaseSettings = Pick<Environment, (typeof DATABASE_SETTINGS)[number]>;

/**
 * Loads `.env` from the working directory into process.env, as `npm start` and `npm run migration:*` both do.
 * Variables already set win over the file.
 */
export function loadEnvFile(path = '.env'): void {
  if (existsSync(path)) process.loadEnvFile(path);
}

/** Converts and checks the variables (all, or only those named), collecting a line per bad one. */
function readEnvironment(raw: Record<string, unknown>, only?: readonly string[]): { env: Environment; problems: string[] } {
  const known = Object.keys(new Environment());
  const present = Object.fromEntries(
    Object.entries(raw).filter(([key, value]) => known.includes(key) && (!only || only.includes(key)) && value !== ''),
  );
  const env = plainToInstance(Environment, present, { enableImplicitConversion: true, exposeDefaultValues: true });
  const problems = validateSync(env, { skipMissingProperties: false })
    .filter((error) => !only || only.includes(error.property))
    .map((error) => {
      const reasons = Object.values(error.constraints ?? {}).join(', ');
      const shown = SECRET_NAME.test(error.property) ? '(hidden)' : JSON.stringify(raw[error.property]);
      return `${error.property}=${shown}: ${reasons}`;
    });
  return { env, problems };
}

/** The embedded database is one process's files in DATA_DIR: in production it must be asked for, not fallen into. */
function databaseProblems(env: DatabaseSettings): string[] {
  if (env.NODE_ENV !== 'production' || env.DATABASE_URL || env.ALLOW_EMBEDDED_DATABASE) return [];
  return [
    'DATABASE_URL: required when NODE_ENV=production (without it the gateway would keep its data in an embedded ' +
      'database under DATA_DIR, one process only); set ALLOW_EMBEDDED_DATABASE=true to run on the embedded database anyway',
  ];
}

function throwIfAny(problems: string[]): void {
  if (problems.length > 0) {
    throw new Error(`Invalid environment configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

/**
 * ConfigModule's `validate` hook: converts strings to numbers, applies defaults and throws ONE error
 * naming every bad variable, so a misconfigured deployment fails at boot and says everything at once.
 */
export function validateEnvironment(raw: Record<string, unknown>): Environment {
  const { env, problems } = readEnvironment(raw);
  problems.push(...databaseProblems(env));

  if (env.LITELLM_API_KEY === undefined) {
    if (env.NODE_ENV === 'production') {
      problems.push('LITELLM_API_KEY: required when NODE_ENV=production (the LiteLLM master or virtual key)');
    } else {
      env.LITELLM_API_KEY = DEVELOPMENT_LITELLM_API_KEY;
    }
  }

  const callerKeys = [env.GATEWAY_API_KEYS, env.GATEWAY_ADMIN_API_KEYS].flatMap((list) =>
    (list ?? '').split(',').map((key) => key.trim()).filter(Boolean),
  );
  if (callerKeys.some((key) => key.length < MIN_CALLER_KEY_LENGTH || !/^[\x21-\x7e]+$/.test(key))) {
    problems.push(
      `GATEWAY_API_KEYS / GATEWAY_ADMIN_API_KEYS: every key needs ${MIN_CALLER_KEY_LENGTH}+ printable characters, without spaces`,
    );
  }
  if (callerKeys.length === 0 && env.NODE_ENV === 'production') {
    problems.push('GATEWAY_API_KEYS / GATEWAY_ADMIN_API_KEYS: at least one caller key is required when NODE_ENV=production');
  }

  throwIfAny(problems);
  return env;
}

/** The database settings alone, checked as validateEnvironment() checks them: for the migration CLI. */
export function validateDatabaseEnvironment(raw: Record<string, unknown>): DatabaseSettings {
  const { env, problems } = readEnvironment(raw, DATABASE_SETTINGS);
  problems.push(...databaseProblems(env));
  throwIfAny(problems);
  return Object.fromEntries(DATABASE_SETTINGS.map((key) => [key, env[key]])) as DatabaseSettings;
}
