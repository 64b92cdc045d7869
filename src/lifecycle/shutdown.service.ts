import { BeforeApplicationShutdown, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Environment } from '../config/environment';

/** How often, once the server is closing, connections that went idle are closed. */
const IDLE_SWEEP_MS = 100;

/**
 * The shutdown sequence after SIGTERM (main.ts enables Nest's shutdown hooks):
 * 1. readiness turns 503 at once, so the orchestrator stops routing new traffic here;
 * 2. the server keeps serving for SHUTDOWN_DRAIN_MS, while that news spreads;
 * 3. the server closes: no new connections; requests in flight finish, their answers carry
 *    `Connection: close`, and every connection is closed as soon as it is idle (keep-alive callers would
 *    otherwise hold the process for the whole keep-alive timeout); streams still open
 *    SHUTDOWN_STREAM_TIMEOUT_MS later are ended with a final error event;
 * 4. the database is closed and the process exits 0, as soon as the last call is done.
 */
@Injectable()
export class ShutdownService implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger(ShutdownService.name);
  private readonly drainMs: number;
  private readonly streamTimeoutMs: number;
  private readonly openStreams = new Set<() => void>();
  private draining = false;
  private closing = false;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    config: ConfigService<Environment, true>,
  ) {
    this.drainMs = config.get('SHUTDOWN_DRAIN_MS', { infer: true });
    this.streamTimeoutMs = config.get('SHUTDOWN_STREAM_TIMEOUT_MS', { infer: true });
  }

  get isShuttingDown(): boolean {
    return this.draining;
  }

  /** The drain is over and the server is closing: every answer from now on closes its connection. */
  get isClosing(): boolean {
    return this.closing;
  }

  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter?.getInstance<FastifyInstance>();
    // onSend, not onRequest: an answer to a call that came in before the drain ended is sent after it too.
    fastify?.addHook('onSend', (_request, reply, payload, done) => {
      if (this.closing) void reply.header('connection', 'close');
      done(null, payload);
    });
  }

  /** Registers an open stream and how to end it; returns the function that unregisters it. */
  trackStream(end: () => void): () => void {
    this.openStreams.add(end);
    return () => this.openStreams.delete(end);
  }

  async beforeApplicationShutdown(signal?: string): Promise<void> {
    this.draining = true;
    this.logger.log(`Shutting down (${signal ?? 'close'}): readiness is failing, draining for ${this.drainMs} ms`);
    await sleep(this.drainMs);
    this.closing = true;
    const server = this.adapterHost.httpAdapter?.getHttpServer() as Server | undefined;
    if (server) {
      const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS).unref();
      server.once('close', () => clearInterval(sweep));
    }
    // The server closes right after this returns; streams get a bounded time to finish on their own.
    setTimeout(() => {
      if (this.openStreams.size > 0) this.logger.warn(`Ending ${this.openStreams.size} stream(s) still open at shutdown`);
      for (const end of this.openStreams) end();
      this.openStreams.clear();
    }, this.streamTimeoutMs).unref();
  }
}
