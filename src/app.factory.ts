import { ConfigService } from '@nestjs/config';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module';
import { checkCallerKeysEarly } from './auth/api-key.guard';
import { CallerKeys, parseKeyList } from './auth/caller-keys';
import { LogController } from 'fastify';
import type { DestinationStream } from 'pino';
import { AllExceptionsFilter } from './common/errors/all-exceptions.filter';
import { registerJsonBodyParser } from './common/json-body-parser';
import { sendSecurityHeaders } from './common/security-headers';
import { requestIdFor } from './common/request-id';
import { observeRequests } from './metrics/request-observer';
import { JsonValidationPipe, validationExceptionFactory } from './common/validation';
import { cacheValidationMetadata } from './common/validation-metadata-cache';
import { configurationWarnings, Environment, validateEnvironment } from './config/environment';
import { createLogger, NestPinoLogger } from './logging/logger';
import { MetricsService } from './metrics/metrics.service';

export function buildOpenApiDocument(app: NestFastifyApplication) {
  const config = new DocumentBuilder()
    .setTitle('llm-gateway')
    .setDescription('Chat completions and embeddings for sibling services, served through LiteLLM.')
    .setVersion('1')
    .addBearerAuth(
      { type: 'http', scheme: 'bearer', description: 'A key from GATEWAY_API_KEYS, or GATEWAY_ADMIN_API_KEYS for admin routes' },
      'api-key',
    )
    // Swagger UI lists the groups in this order: what callers use first, operations last.
    .addTag('llm', 'Chat and embeddings, plain or for an organization (its model, fallback, limits and usage)')
    .addTag('organizations', 'Tenants: their model, fallback model and limits (writes need an admin key)')
    .addTag('usage', 'The usage ledger: one record per upstream attempt, aggregated (admin keys)')
    .addTag('openai', "OpenAI's API for stock SDKs: set the base URL to /openai/v1 and a gateway key")
    .addTag('health', 'Probes for load balancers and Kubernetes (no key)')
    .addTag('operations', 'Prometheus metrics (no key)')
    .build();
  return SwaggerModule.createDocument(app, config);
}

export interface CreateAppOptions {
  /** Where log lines go; stdout when absent. Tests capture them here. */
  logDestination?: DestinationStream;
}

/** Builds the whole HTTP application; main.ts only listens. Tests create the app the same way. */
export async function createApp(options: CreateAppOptions = {}): Promise<NestFastifyApplication> {
  // Validated here, before Nest starts, so a bad configuration is one plain error listing every problem.
  const environment = validateEnvironment(process.env);
  const warnings = configurationWarnings(process.env, environment);
  const callerKeys = CallerKeys.fromLists(
    parseKeyList(environment.GATEWAY_API_KEYS),
    parseKeyList(environment.GATEWAY_ADMIN_API_KEYS),
  );
  // From here on only the digests exist: the plain caller keys are not kept anywhere.
  delete environment.GATEWAY_API_KEYS;
  delete environment.GATEWAY_ADMIN_API_KEYS;
  delete process.env.GATEWAY_API_KEYS;
  delete process.env.GATEWAY_ADMIN_API_KEYS;
  const logger = createLogger(environment.LOG_LEVEL, options.logDestination);
  const nestLogger = new NestPinoLogger(logger);
  for (const warning of warnings) nestLogger.warn(warning, 'Config');

  // Fastify over Express: about twice the throughput under Nest in published benchmarks, and the
  // gateway's budget for its own hop is small (see docs/benchmarks.md).
  const adapter = new FastifyAdapter({
    loggerInstance: logger,
    // One line per request is written by observeRequests(), not by Fastify. `requestId` is the one name of the
    // request id in every log line, Fastify's and the app's (see NestPinoLogger).
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    genReqId: requestIdFor,
    requestIdHeader: false,
    // While the server closes, requests already on a connection are served, not answered 503.
    return503OnClosing: false,
    // A client gets REQUEST_TIMEOUT_MS to send its whole request and at most 10 s for the headers; Node
    // checks every second, not every 30 s, so a slow client is cut off close to its deadline.
    requestTimeout: environment.REQUEST_TIMEOUT_MS,
    http: {
      requestTimeout: environment.REQUEST_TIMEOUT_MS,
      headersTimeout: Math.min(10_000, environment.REQUEST_TIMEOUT_MS),
      connectionsCheckingInterval: 1_000,
    },
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(environment, callerKeys), adapter, {
    abortOnError: false,
    logger: nestLogger,
    // Nest would add form parsing; the gateway takes JSON only (see useBodyParser below).
    bodyParser: false,
  });
  const config = app.get<ConfigService<Environment, true>>(ConfigService);

  const fastify = app.getHttpAdapter().getInstance();
  observeRequests(fastify, app.get(MetricsService));
  sendSecurityHeaders(fastify);
  checkCallerKeysEarly(fastify, callerKeys);

  // JSON only: any other content type is a 415, not a string that fails validation in odd ways.
  registerJsonBodyParser(fastify, config.get('BODY_LIMIT_BYTES', { infer: true }));
  // Every DTO class is loaded by now: class-validator's lookups of their rules can be kept.
  cacheValidationMetadata();
  app.useGlobalPipes(
    new JsonValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      stopAtFirstError: true,
      exceptionFactory: validationExceptionFactory,
    }),
  );
  app.useGlobalFilters(new AllExceptionsFilter());

  if (environment.SWAGGER_ENABLED ?? environment.NODE_ENV !== 'production') {
    SwaggerModule.setup('docs', app, buildOpenApiDocument(app), {
      jsonDocumentUrl: 'docs-json',
      swaggerOptions: { persistAuthorization: true },
    });
  }
  return app;
}
