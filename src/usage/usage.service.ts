import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { GatewayError } from '../common/errors/gateway-error';
import { databaseUnavailable, isDatabaseUnavailable } from '../database/database.errors';
import { UsageRecord } from './usage-record.entity';

export const USAGE_GROUPINGS = ['model', 'day', 'caller', 'organization'] as const;
export type UsageGrouping = (typeof USAGE_GROUPINGS)[number];

export interface UsageFigures {
  /** Calls: a call that fell back is one request. */
  requests: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  /** The sum of the costs LiteLLM reported; null when it reported none. */
  costUsd: number | null;
  /** Calls whose last attempt failed (a caller who left is not an error). */
  errors: number;
}

export interface UsageSummary {
  totals: UsageFigures;
  groups: Array<UsageFigures & { key: string }>;
}

export interface UsageFilter {
  organizationId?: string;
  from: Date;
  to: Date;
}

export interface RecordsPage {
  items: UsageRecord[];
  /** Pass as `cursor` for the next (older) page; absent on the last page. */
  nextCursor?: string;
}

/** SQL for each grouping's key; none of them takes input from the caller. */
const GROUP_KEYS: Record<UsageGrouping, string> = {
  model: 'model',
  day: `to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')`,
  caller: `coalesce(caller_key_id, 'none')`,
  organization: `coalesce(organization_id::text, 'none')`,
};

const FIGURES = `
  count(DISTINCT call_id)::int AS requests,
  coalesce(sum(prompt_tokens), 0)::bigint AS "promptTokens",
  coalesce(sum(completion_tokens), 0)::bigint AS "completionTokens",
  coalesce(sum(total_tokens), 0)::bigint AS "totalTokens",
  sum(cost_usd) AS "costUsd",
  (count(DISTINCT call_id) FILTER (WHERE last_attempt AND outcome NOT IN ('ok', 'aborted_by_caller')))::int AS errors`;

type FiguresRow = Record<keyof UsageFigures, string | number | null> & { key?: string };

function figures(row: FiguresRow): UsageFigures {
  return {
    requests: Number(row.requests),
    promptTokens: Number(row.promptTokens),
    completionTokens: Number(row.completionTokens),
    totalTokens: Number(row.totalTokens),
    costUsd: row.costUsd === null ? null : Number(row.costUsd),
    errors: Number(row.errors),
  };
}

/** The usage ledger's read side: aggregated in SQL, so a month of records never crosses into the process. */
@Injectable()
export class UsageService {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  async summarize(filter: UsageFilter, groupBy: UsageGrouping): Promise<UsageSummary> {
    const parameters: unknown[] = [filter.from, filter.to];
    let where = 'started_at >= $1 AND started_at < $2';
    if (filter.organizationId) {
      parameters.push(filter.organizationId);
      where += ' AND organization_id = $3';
    }
    // Each record knows whether it is its call's last attempt: a call is an error when that one failed.
    const records = `(SELECT *, attempt = max(attempt) OVER (PARTITION BY call_id) AS last_attempt FROM usage_records WHERE ${where}) AS records`;
    const [totals, groups] = await this.query<FiguresRow>([
      [`SELECT ${FIGURES} FROM ${records}`, parameters],
      [`SELECT ${GROUP_KEYS[groupBy]} AS key, ${FIGURES} FROM ${records} GROUP BY 1 ORDER BY 1`, parameters],
    ]);
    return { totals: figures(totals[0]), groups: groups.map((row) => ({ key: String(row.key), ...figures(row) })) };
  }

  /** The tokens an organization's attempts used in [from, to): what a budget period has consumed. */
  async tokensBetween(organizationId: string, from: Date, to: Date): Promise<number> {
    const [rows] = await this.query<{ tokens: string }>([
      [
        'SELECT coalesce(sum(total_tokens), 0)::bigint AS tokens FROM usage_records WHERE organization_id = $1 AND started_at >= $2 AND started_at < $3',
        [organizationId, from, to],
      ],
    ]);
    return Number(rows[0].tokens);
  }

  /** Raw records, newest first; the cursor is the position after the last one returned. */
  async records(filter: UsageFilter, limit: number, cursor?: string): Promise<RecordsPage> {
    const query = this.dataSource
      .getRepository(UsageRecord)
      .createQueryBuilder('record')
      .where('record.startedAt >= :from AND record.startedAt < :to', { from: filter.from, to: filter.to })
      .orderBy('record.startedAt', 'DESC')
      .addOrderBy('record.callId', 'DESC')
      .addOrderBy('record.attempt', 'DESC')
      .take(limit + 1);
    if (filter.organizationId) query.andWhere('record.organizationId = :organizationId', { organizationId: filter.organizationId });
    if (cursor) {
      const after = decodeCursor(cursor);
      query.andWhere('(record.startedAt, record.callId, record.attempt) < (:startedAt, :callId, :attempt)', after);
    }
    let items: UsageRecord[];
    try {
      items = await query.getMany();
    } catch (error) {
      throw isDatabaseUnavailable(error) ? databaseUnavailable() : error;
    }
    if (items.length <= limit) return { items };
    items = items.slice(0, limit);
    const last = items[items.length - 1];
    return { items, nextCursor: encodeCursor({ startedAt: last.startedAt.toISOString(), callId: last.callId, attempt: last.attempt }) };
  }

  private async query<T>(statements: Array<[string, unknown[]]>): Promise<T[][]> {
    try {
      const results: T[][] = [];
      for (const [sql, parameters] of statements) results.push((await this.dataSource.query(sql, parameters)) as T[]);
      return results;
    } catch (error) {
      throw isDatabaseUnavailable(error) ? databaseUnavailable() : error;
    }
  }
}

interface Cursor {
  startedAt: string;
  callId: string;
  attempt: number;
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function decodeCursor(text: string): Cursor {
  try {
    const cursor = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Cursor;
    const valid =
      typeof cursor.startedAt === 'string' &&
      !Number.isNaN(Date.parse(cursor.startedAt)) &&
      typeof cursor.callId === 'string' &&
      /^[0-9a-f-]{36}$/.test(cursor.callId) &&
      Number.isInteger(cursor.attempt);
    if (valid) return cursor;
  } catch {
    // falls through to the 400
  }
  throw new GatewayError('VALIDATION_FAILED', 'cursor is not one this API returned');
}
