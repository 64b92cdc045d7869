import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { mkdtempSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp, CreateAppOptions } from '../../src/app.factory';

export interface RunningGateway {
  app: NestFastifyApplication;
  url: string;
  close(): Promise<void>;
}

/** A fresh directory for an embedded database, so no suite touches the developer's ./.data. */
export function temporaryDataDir(): string {
  return mkdtempSync(join(tmpdir(), 'llm-gateway-test-'));
}

/**
 * Starts the real application, as main.ts does, on a free port. `env` is applied to process.env first,
 * which is where the app reads its configuration from. Without DATABASE_URL the app uses an embedded
 * database in a temporary DATA_DIR unless the suite names one.
 */
export async function startGateway(
  env: Record<string, string | undefined>,
  options: CreateAppOptions = {},
): Promise<RunningGateway> {
  const defaults = {
    LOG_LEVEL: 'warn',
    DATA_DIR: env.DATA_DIR ?? process.env.DATA_DIR ?? temporaryDataDir(),
    SHUTDOWN_DRAIN_MS: '0', // app.close() runs the shutdown sequence; tests need no drain
  };
  for (const [key, value] of Object.entries({ ...defaults, ...env })) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  const app = await createApp(options);
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

export function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

/** Response bodies are checked field by field in the tests; `any` keeps that readable. */
export async function readJson(response: Response): Promise<any> {
  return response.json();
}

export interface ServerSentEvent {
  event?: string;
  data: string;
}

/** Parses a complete text/event-stream body into its events. */
export function parseEventStream(text: string): ServerSentEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const event: ServerSentEvent = { data: '' };
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event.event = line.slice('event: '.length);
        if (line.startsWith('data: ')) event.data += line.slice('data: '.length);
      }
      return event;
    });
}

/** The content deltas of a complete chat stream, joined: what the caller would show. */
export function streamedContent(events: ServerSentEvent[]): string {
  return events
    .filter((event) => event.event === undefined && event.data !== '[DONE]')
    .map((event) => JSON.parse(event.data).content ?? '')
    .join('');
}
