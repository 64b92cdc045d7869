import { BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { setTimeout as sleep } from 'node:timers/promises';
import { Environment } from '../config/environment';

/**
 * The shutdown sequence after SIGTERM (main.ts enables Nest's shutdown hooks):
 * 1. readiness turns 503 at once, so the orchestrator stops routing new traffic here;
 * 2. the server keeps serving for SHUTDOWN_DRAIN_MS, while that news spreads;
 * 3. Nest closes the server: no new connections, in-flight requests finish; streams still open
 *    SHUTDOWN_STREAM_TIMEOUT_MS later are ended with a final error event;
 * 4. the database is closed and the process exits 0.
 */
@Injectable()
export class ShutdownService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(ShutdownService.name);
  private readonly drainMs: number;
  private readonly streamTimeoutMs: number;
  private readonly openStreams = new Set<() => void>();
  private draining = false;

  constructor(config: ConfigService<Environment, true>) {
    this.drainMs = config.get('SHUTDOWN_DRAIN_MS', { infer: true });
    this.streamTimeoutMs = config.get('SHUTDOWN_STREAM_TIMEOUT_MS', { infer: true });
  }

  get isShuttingDown(): boolean {
    return this.draining;
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
    // The server closes right after this returns; streams get a bounded time to finish on their own.
    setTimeout(() => {
      if (this.openStreams.size > 0) this.logger.warn(`Ending ${this.openStreams.size} stream(s) still open at shutdown`);
      for (const end of this.openStreams) end();
      this.openStreams.clear();
    }, this.streamTimeoutMs).unref();
  }
}
