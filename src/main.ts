import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { FastifyInstance } from 'fastify';
import { setFlagsFromString } from 'node:v8';
import { createApp } from './app.factory';
import { CallerKeys } from './auth/caller-keys';
import { Environment, loadEnvFile } from './config/environment';
import { BOOT_SETTINGS, BootSettings, bootSummary } from './logging/boot-summary';

// V8 lets the old generation grow well past what survived its last full collection before collecting
// again; under sustained load that pushed the gateway from ~140 MB idle to 200-300 MB resident for a live
// heap of ~40 MB. 1.25x keeps the peak near what is live (bench: ~35 MB less at 32 connections), without
// a hard heap cap that a burst of large embedding batches could run into. V8 reads the factor at each
// collection, so setting it here works; NODE_OPTIONS does not accept it, a node command-line flag wins.
if (!process.execArgv.some((arg) => arg.startsWith('--heap-growing-percent'))) {
  setFlagsFromString('--heap-growing-percent=25');
}

async function bootstrap(): Promise<void> {
  loadEnvFile();
  const app = await createApp();
  // SIGTERM/SIGINT run the shutdown sequence (see ShutdownService), then exit 0.
  app.enableShutdownHooks(['SIGTERM', 'SIGINT'], { useProcessExit: true });
  const config = app.get<ConfigService<Environment, true>>(ConfigService);
  await app.listen(config.get('PORT', { infer: true }), config.get('HOST', { infer: true }));

  const fastify: FastifyInstance = app.getHttpAdapter().getInstance();
  const summary = bootSummary({
    url: await app.getUrl(),
    environment: Object.fromEntries(BOOT_SETTINGS.map((key) => [key, config.get(key, { infer: true })])) as BootSettings,
    authEnabled: app.get(CallerKeys).enabled,
    swaggerPath: fastify.hasRoute({ method: 'GET', url: '/docs' }) ? '/docs' : undefined,
  });
  new Logger('Boot').log(summary);
}

bootstrap().catch((error: unknown) => {
  // A bad configuration prints its list of problems, not a stack trace.
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
