import 'reflect-metadata';
import { ConfigService } from '@nestjs/config';
import { existsSync } from 'node:fs';
import { createApp } from './app.factory';
import { Environment } from './config/environment';

async function bootstrap(): Promise<void> {
  // Variables already set win over the file, as with dotenv.
  if (existsSync('.env')) process.loadEnvFile('.env');
  const app = await createApp();
  // SIGTERM/SIGINT run the shutdown sequence (see ShutdownService), then exit 0.
  app.enableShutdownHooks(['SIGTERM', 'SIGINT'], { useProcessExit: true });
  const config = app.get<ConfigService<Environment, true>>(ConfigService);
  await app.listen(config.get('PORT', { infer: true }), config.get('HOST', { infer: true }));
}

bootstrap().catch((error: unknown) => {
  // A bad configuration prints its list of problems, not a stack trace.
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
