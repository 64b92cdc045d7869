import { ValidationPipe } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module';
import { AllExceptionsFilter } from './common/all-exceptions.filter';
import { REQUEST_ID_HEADER, requestIdFor } from './common/request-id';
import { Environment, LOG_LEVELS, validateEnvironment } from './config/environment';
import { validationExceptionFactory } from './common/validation';

export function buildOpenApiDocument(app: NestFastifyApplication) {
  const config = new DocumentBuilder()
    .setTitle('llm-gateway')
    .setDescription('Chat completions and embeddings for sibling services, served through LiteLLM.')
    .setVersion('1')
    .build();
  return SwaggerModule.createDocument(app, config);
}

/** Builds the whole HTTP application; main.ts only listens. Tests create the app the same way. */
export async function createApp(): Promise<NestFastifyApplication> {
  // Validated here, before Nest starts, so a bad configuration is one plain error listing every problem.
  const environment = validateEnvironment(process.env);
  // Fastify over Express: about twice the throughput under Nest in published benchmarks, and the
  // gateway's budget for its own hop is small (see docs/benchmarks.md).
  const adapter = new FastifyAdapter({ genReqId: requestIdFor, requestIdHeader: false });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(environment), adapter, {
    abortOnError: false,
    logger: LOG_LEVELS.slice(0, LOG_LEVELS.indexOf(environment.LOG_LEVEL) + 1),
    // Nest would add form parsing; the gateway takes JSON only (see useBodyParser below).
    bodyParser: false,
  });
  const config = app.get<ConfigService<Environment, true>>(ConfigService);

  const fastify = app.getHttpAdapter().getInstance();
  fastify.addHook('onRequest', async (request, reply) => {
    void reply.header(REQUEST_ID_HEADER, request.id);
  });

  // JSON only: any other content type is a 415, not a string that fails validation in odd ways.
  fastify.removeAllContentTypeParsers();
  app.useBodyParser('application/json', { bodyLimit: config.get('BODY_LIMIT_BYTES', { infer: true }) });
  app.useGlobalPipes(
    new ValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      stopAtFirstError: true,
      exceptionFactory: validationExceptionFactory,
    }),
  );
  app.useGlobalFilters(new AllExceptionsFilter());
  app.enableShutdownHooks();

  SwaggerModule.setup('docs', app, buildOpenApiDocument(app), { jsonDocumentUrl: 'docs-json' });
  return app;
}
