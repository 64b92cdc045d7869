import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { InjectDataSource } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { appendFile, mkdir, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DataSource } from 'typeorm';
import { Environment } from '../config/environment';
import { isDatabaseUnavailable } from '../database/database.errors';
import { MetricsService } from '../metrics/metrics.service';
import { UsageRecord } from './usage-record.entity';

/** A record as the pipeline hands it over: the row, with the cost as a number. */
export type UsageEntry = Omit<UsageRecord, 'recordedAt' | 'costUsd'> & { costUsd: number | null };

/** The columns a batch insert fills, with their SQL types and the entry's field for each. */
const INSERT_COLUMNS: ReadonlyArray<readonly [string, keyof UsageEntry, string]> = [
  ['call_id', 'callId', 'uuid'],
  ['attempt', 'attempt', 'smallint'],
  ['request_id', 'requestId', 'text'],
  ['organization_id', 'organizationId', 'uuid'],
  ['caller_key_id', 'callerKeyId', 'text'],
  ['route', 'route', 'text'],
  ['operation', 'operation', 'text'],
  ['requested_model', 'requestedModel', 'text'],
  ['model', 'model', 'text'],
  ['upstream_model', 'upstreamModel', 'text'],
  ['fallback_reason', 'fallbackReason', 'text'],
  ['outcome', 'outcome', 'text'],
  ['prompt_tokens', 'promptTokens', 'integer'],
  ['completion_tokens', 'completionTokens', 'integer'],
  ['total_tokens', 'totalTokens', 'integer'],
  ['cached_prompt_tokens', 'cachedPromptTokens', 'integer'],
  ['tokens_estimated', 'tokensEstimated', 'boolean'],
  ['cost_usd', 'costUsd', 'numeric'],
  ['started_at', 'startedAt', 'timestamptz'],
  ['time_to_first_byte_ms', 'timeToFirstByteMs', 'integer'],
  ['duration_ms', 'durationMs', 'integer'],
];
const INSERT_SQL =
  `INSERT INTO usage_records (${INSERT_COLUMNS.map(([column]) => column).join(', ')}) ` +
  `SELECT * FROM unnest(${INSERT_COLUMNS.map(([, , type], index) => `$${index + 1}::${type}[]`).join(', ')}) ` +
  'ON CONFLICT DO NOTHING';

const MAX_RETRY_DELAY_MS = 30_000;
const RETENTION_EVERY_MS = 60 * 60 * 1000;
const RETENTION_BATCH = 1_000;
const SPILL_SUFFIX = '.jsonl';

/**
 * The usage ledger's writer, off the request path: `record()` only appends to a buffer, which is written in
 * batches every USAGE_FLUSH_INTERVAL_MS (or sooner, once a batch is full) with INSERT ... ON CONFLICT DO
 * NOTHING, so a write that is replayed never counts twice. While the database is unreachable, records are
 * kept and the write retried with backoff; past USAGE_BUFFER_MAX records they spill to an append-only file
 * under DATA_DIR, replayed when the database is back and at the next boot. At shutdown, after the last call
 * has been served, the buffer is written (or spilled). Only a SIGKILL can lose records: at most one flush
 * interval's worth.
 */
@Injectable()
export class UsageLedger implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(UsageLedger.name);
  private readonly enabled: boolean;
  private readonly flushIntervalMs: number;
  private readonly batchSize: number;
  private readonly bufferMax: number;
  private readonly retentionDays: number;
  private readonly spillDir: string;
  /** This process's spill file for the current outage; a new one for the next. */
  private spillFile: string | undefined;
  private buffer: UsageEntry[] = [];
  private flushing: Promise<void> | undefined;
  private spilling: Promise<void> = Promise.resolve();
  private retryDelayMs = 0;
  private nextWriteAt = 0;
  private timers: NodeJS.Timeout[] = [];

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly metrics: MetricsService,
    config: ConfigService<Environment, true>,
  ) {
    this.enabled = config.get('USAGE_LEDGER_ENABLED', { infer: true });
    this.flushIntervalMs = config.get('USAGE_FLUSH_INTERVAL_MS', { infer: true });
    this.batchSize = config.get('USAGE_BATCH_SIZE', { infer: true });
    this.bufferMax = config.get('USAGE_BUFFER_MAX', { infer: true });
    this.retentionDays = config.get('USAGE_RETENTION_DAYS', { infer: true });
    this.spillDir = join(resolve(config.get('DATA_DIR', { infer: true })), 'usage-spill');
  }

  /** Takes one attempt's record. Never waits, never throws. */
  record(entry: UsageEntry): void {
    if (!this.enabled) return;
    this.buffer.push(entry.upstreamModel ? { ...entry, upstreamModel: storableText(entry.upstreamModel) } : entry);
    if (this.buffer.length > this.bufferMax) this.spill(this.buffer.splice(0));
    else if (this.buffer.length >= this.batchSize) void this.flush();
    this.metrics.usageRecordsPending.set(this.buffer.length);
  }

  async onApplicationBootstrap(): Promise<void> {
    this.timers.push(setInterval(() => void this.flush(), this.flushIntervalMs).unref());
    this.timers.push(setInterval(() => void this.deleteExpired(), RETENTION_EVERY_MS).unref());
    // A previous run's spill files, and the retention's first pass: in the background, not before serving.
    void this.replaySpilled().then(() => this.deleteExpired());
  }

  /** Runs after the HTTP server has closed (every call has been served and recorded), before the database closes. */
  async onApplicationShutdown(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    await this.flushing;
    this.nextWriteAt = 0;
    await this.flush();
    if (this.buffer.length > 0) this.spill(this.buffer.splice(0));
    await this.spilling;
    this.metrics.usageRecordsPending.set(0);
  }

  /** Writes what is buffered now; one write at a time; nothing while a backoff runs. */
  flush(): Promise<void> {
    if (!this.flushing && this.buffer.length > 0 && Date.now() >= this.nextWriteAt) {
      this.flushing = this.writeBuffered().finally(() => (this.flushing = undefined));
    }
    return this.flushing ?? Promise.resolve();
  }

  private async writeBuffered(): Promise<void> {
    const wasFailing = this.retryDelayMs > 0;
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, this.batchSize);
      try {
        await this.insert(batch);
      } catch (error) {
        if (!isDatabaseUnavailable(error)) {
          await this.insertOneByOne(batch);
          continue;
        }
        this.buffer.unshift(...batch);
        this.backOff();
        return;
      } finally {
        this.metrics.usageRecordsPending.set(this.buffer.length);
      }
    }
    this.retryDelayMs = 0;
    this.nextWriteAt = 0;
    if (wasFailing) {
      this.logger.log('The database is back: usage records are written again');
      void this.replaySpilled();
    }
  }

  /**
   * One statement per batch, one array parameter per column (`unnest`): the statement and its parameters are
   * the same size whatever the batch, and building it costs a few µs per record where TypeORM's query builder
   * cost about 200 µs (measured in the streams benchmark's profile).
   */
  private async insert(entries: UsageEntry[]): Promise<void> {
    const parameters = INSERT_COLUMNS.map(([, field]) => entries.map((entry) => entry[field] ?? null));
    await this.dataSource.query(INSERT_SQL, parameters);
    this.metrics.usageRecordsWritten.inc(entries.length);
  }

  /** A batch the database refused for a reason other than being away: the one bad row is dropped, not the batch. */
  private async insertOneByOne(entries: UsageEntry[]): Promise<void> {
    for (const entry of entries) {
      try {
        await this.insert([entry]);
      } catch (error) {
        if (isDatabaseUnavailable(error)) {
          this.buffer.unshift(entry);
          continue;
        }
        this.metrics.usageRecordsDropped.inc();
        this.logger.error({ msg: `Usage record dropped: the database refused it (${(error as Error).message})`, requestId: entry.requestId });
      }
    }
  }

  private backOff(): void {
    if (this.retryDelayMs === 0) this.logger.warn('The database is unreachable: usage records are kept and retried');
    this.retryDelayMs = Math.min(Math.max(this.retryDelayMs * 2, this.flushIntervalMs), MAX_RETRY_DELAY_MS);
    this.nextWriteAt = Date.now() + this.retryDelayMs;
  }

  /** Appends to this outage's spill file, one JSON line per record, in order. */
  private spill(entries: UsageEntry[]): void {
    this.spillFile ??= join(this.spillDir, `usage-${process.pid}-${Date.now()}-${randomUUID().slice(0, 8)}${SPILL_SUFFIX}`);
    const file = this.spillFile;
    const lines = entries.map((entry) => JSON.stringify(entry)).join('\n') + '\n';
    this.spilling = this.spilling
      .then(() => mkdir(this.spillDir, { recursive: true }))
      .then(() => appendFile(file, lines))
      .then(
        () => this.metrics.usageRecordsSpilled.inc(entries.length),
        (error: Error) => {
          this.metrics.usageRecordsDropped.inc(entries.length);
          this.logger.error(`${entries.length} usage records dropped: the spill file could not be written (${error.message})`);
        },
      );
    this.logger.warn(`${entries.length} usage records spilled to ${file} while the database is unreachable`);
  }

  /**
   * Writes every spill file in DATA_DIR (this process's, and those a previous run left) to the database and
   * deletes it. A file is claimed by renaming it first, so two processes sharing DATA_DIR do not both replay
   * it; were one to be replayed twice anyway, ON CONFLICT DO NOTHING keeps every record once.
   */
  async replaySpilled(): Promise<void> {
    await this.spilling;
    this.spillFile = undefined;
    let names: string[];
    try {
      names = (await readdir(this.spillDir)).filter((name) => name.includes(SPILL_SUFFIX));
    } catch {
      return; // no spill directory: nothing was ever spilled
    }
    for (const name of names) {
      const claimed = join(this.spillDir, `${name.split(SPILL_SUFFIX)[0]}${SPILL_SUFFIX}.replaying-${process.pid}`);
      try {
        await rename(join(this.spillDir, name), claimed);
      } catch {
        continue; // another process took it
      }
      try {
        const entries = parseSpill(await readFile(claimed, 'utf8'));
        for (let start = 0; start < entries.length; start += this.batchSize) await this.insert(entries.slice(start, start + this.batchSize));
        await unlink(claimed);
        this.logger.log(`Replayed ${entries.length} spilled usage records from ${name}`);
      } catch (error) {
        await rename(claimed, join(this.spillDir, name)).catch(() => undefined);
        if (!isDatabaseUnavailable(error)) this.logger.error(`Could not replay ${name}: ${(error as Error).message}`);
        return;
      }
    }
  }

  /** USAGE_RETENTION_DAYS: older records go, in small batches, so no statement holds locks for long. */
  private async deleteExpired(): Promise<void> {
    const before = new Date(Date.now() - this.retentionDays * 24 * 60 * 60 * 1000);
    try {
      for (;;) {
        const deleted = await this.dataSource.query(
          `DELETE FROM usage_records WHERE ctid IN (SELECT ctid FROM usage_records WHERE started_at < $1 LIMIT ${RETENTION_BATCH})`,
          [before],
        );
        if (affectedRows(deleted) < RETENTION_BATCH) return;
      }
    } catch (error) {
      if (!isDatabaseUnavailable(error)) this.logger.error(`Usage retention failed: ${(error as Error).message}`);
    }
  }
}

/** One record per line; a last line cut short by a crash is skipped. */
/**
 * The provider's own words (the model it reports) as PostgreSQL text can hold them: a NUL would make the
 * database refuse the whole record, so it becomes U+FFFD; and at most 200 characters are kept.
 */
export function storableText(text: string): string {
  return text.replace(/\u0000/g, '\ufffd').slice(0, 200);
}

function parseSpill(text: string): UsageEntry[] {
  const entries: UsageEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      const entry = JSON.parse(line) as UsageEntry;
      entries.push({ ...entry, startedAt: new Date(entry.startedAt) });
    } catch {
      // the torn tail of a write the process did not live to finish
    }
  }
  return entries;
}

/** TypeORM's query() gives [rows, count] for a DELETE on PostgreSQL; PGlite's driver gives the same. */
function affectedRows(result: unknown): number {
  return Array.isArray(result) && typeof result[1] === 'number' ? result[1] : 0;
}
