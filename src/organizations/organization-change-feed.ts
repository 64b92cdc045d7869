import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { InjectDataSource } from '@nestjs/typeorm';
import { Client, Notification } from 'pg';
import { DataSource } from 'typeorm';
import { Environment } from '../config/environment';
import { MetricsService } from '../metrics/metrics.service';

export const ORGANIZATION_CHANGED_CHANNEL = 'llm_gateway_organization_changed';

const MAX_RECONNECT_DELAY_MS = 30_000;

/** An organization id; or undefined when changes may have been missed and every cached entry is suspect. */
export type OrganizationChangeHandler = (id: string | undefined) => void;

/**
 * Tells every gateway instance on one PostgreSQL server that an organization changed, so each drops its
 * cached preferences at once instead of after ORG_CACHE_TTL_MS: PATCH and DELETE publish the id with
 * pg_notify, and every instance LISTENs on a connection of its own. While that connection is down, cached
 * entries expire by their TTL as before; when it comes back, the whole cache is dropped, since changes may
 * have been missed. Off with the embedded database, which one process owns.
 */
@Injectable()
export class OrganizationChangeFeed implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(OrganizationChangeFeed.name);
  private readonly databaseUrl: string | undefined;
  private readonly handlers: OrganizationChangeHandler[] = [];
  private client: Client | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectDelayMs = 1_000;
  private wasConnected = false;
  private stopped = false;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly metrics: MetricsService,
    config: ConfigService<Environment, true>,
  ) {
    this.databaseUrl = config.get('DATABASE_URL', { infer: true });
  }

  onChange(handler: OrganizationChangeHandler): void {
    this.handlers.push(handler);
  }

  /** After the change is committed. A failure only delays other instances until the TTL: logged, not thrown. */
  async publish(id: string): Promise<void> {
    if (!this.databaseUrl) return;
    try {
      await this.dataSource.query('SELECT pg_notify($1, $2)', [ORGANIZATION_CHANGED_CHANNEL, id]);
    } catch (error) {
      this.logger.warn(`Could not tell other instances that organization ${id} changed: ${(error as Error).message}`);
    }
  }

  /** Awaits the first connection, so an instance that is up hears every change made after it started. */
  async onApplicationBootstrap(): Promise<void> {
    if (this.databaseUrl) await this.connect();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    await this.client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new Client({ connectionString: this.databaseUrl, connectionTimeoutMillis: 3_000 });
    this.client = client;
    // Without a listener, an 'error' on an idle client would end the process.
    client.on('error', () => this.disconnected(client));
    client.on('end', () => this.disconnected(client));
    client.on('notification', (message: Notification) => {
      if (message.channel === ORGANIZATION_CHANGED_CHANNEL && message.payload) this.notify(message.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${ORGANIZATION_CHANGED_CHANNEL}`);
    } catch {
      this.disconnected(client);
      return;
    }
    this.metrics.organizationChangeFeedListening.set(1);
    // Whatever was cached while nobody listened may be stale (at boot the cache is empty anyway).
    this.notify(undefined);
    if (this.wasConnected) this.logger.log('Listening for organization changes again; dropped the preference cache');
    this.wasConnected = true;
    this.reconnectDelayMs = 1_000;
  }

  private disconnected(client: Client): void {
    if (this.client !== client || this.stopped) return;
    this.client = undefined;
    this.metrics.organizationChangeFeedListening.set(0);
    void client.end().catch(() => undefined);
    this.logger.warn(
      `Not listening for organization changes (database unreachable); retrying in ${this.reconnectDelayMs} ms. ` +
        'Until then, changes made through other instances reach this one within ORG_CACHE_TTL_MS.',
    );
    this.reconnectTimer = setTimeout(() => void this.connect(), this.reconnectDelayMs);
    this.reconnectTimer.unref();
    this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, MAX_RECONNECT_DELAY_MS);
  }

  private notify(id: string | undefined): void {
    for (const handler of this.handlers) handler(id);
  }
}
