import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
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
 * 4. the database is closed and the process exits 0, as soon as the last call is done; a last line says what was
 *    drained (requests served after the signal, those still in flight when the server closed, streams ended).
 */
@Injectable()
export class ShutdownService implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger(ShutdownService.name);
  private readonly drainMs: number;
  private readonly streamTimeoutMs: number;
  private readonly openStreams = new Set<() => void>();
  private draining = false;
  private closing = false;
  /** For the last line: requests in flight now, and what happened to them once the shutdown began. */
  private inFlight = 0;
  private readonly drained = {
    signal: 'close',
    startedAt: 0,
    inFlightAtSignal: 0,
    servedAfterSignal: 0,
    arrivedDuringDrain: 0,
    inFlightAtClose: 0,
    streamsAtClose: 0,
    streamsEnded: 0,
  };

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
    fastify?.addHook('onRequest', (_request, reply, done) => {
      this.inFlight += 1;
      if (this.draining) this.drained.arrivedDuringDrain += 1;
      reply.raw.once('close', () => {
        this.inFlight -= 1;
        if (this.draining) this.drained.servedAfterSignal += 1;
      });
      done();
    });
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
    Object.assign(this.drained, { signal: signal ?? 'close', startedAt: performance.now(), inFlightAtSignal: this.inFlight });
    this.logger.log(`Shutting down (${signal ?? 'close'}): readiness is failing, draining for ${this.drainMs} ms`);
    await sleep(this.drainMs);
    this.closing = true;
    Object.assign(this.drained, { inFlightAtClose: this.inFlight, streamsAtClose: this.openStreams.size });
    const server = this.adapterHost.httpAdapter?.getHttpServer() as Server | undefined;
    if (server) {
      const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS).unref();
      server.once('close', () => clearInterval(sweep));
    }
    // The server closes right after this returns; streams get a bounded time to finish on their own.
    setTimeout(() => {
      if (this.openStreams.size > 0) this.logger.warn(`Ending ${this.openStreams.size} stream(s) still open at shutdown`);
      this.drained.streamsEnded += this.openStreams.size;
      for (const end of this.openStreams) end();
      this.openStreams.clear();
    }, this.streamTimeoutMs).unref();
  }

  /** After the server has closed (every request answered): the last line, saying what the shutdown drained. */
  onApplicationShutdown(): void {
    if (!this.draining) return;
    const { signal, startedAt, ...counts } = this.drained;
    const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
    this.logger.log({
      msg:
        `Shut down (${signal}) in ${seconds} s: ${counts.servedAfterSignal} request(s) finished after the signal ` +
        `(${counts.inFlightAtSignal} in flight at the signal, ${counts.arrivedDuringDrain} arriving during the drain, ` +
        `${counts.inFlightAtClose} still in flight when the server closed); ${counts.streamsAtClose} stream(s) open when it closed, ` +
        `${counts.streamsEnded} ended by SHUTDOWN_STREAM_TIMEOUT_MS`,
      shutdown: { signal, durationMs: Math.round(performance.now() - startedAt), ...counts },
    });
  }
}
