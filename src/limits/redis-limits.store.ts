import { OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { MetricsService } from '../metrics/metrics.service';
import { AdmissionPlan, MINUTE_MS, PlanOutcome, UsagePlan, UsageReading } from './admission-plan';
import { LimitsUnavailableError } from './limits.errors';
import { LimitsStore } from './limits.store';
import type { LimitName, Reservation } from './limits.types';
import { ADMIT_SCRIPT, FINISH_SCRIPT } from './redis-limits.scripts';

/** At most this many admissions, or finished calls, per script: Redis runs nothing else while a script runs. */
const PER_SCRIPT = 256;

/** One admission's or one release's part of a script (its keys, and its fields joined in one argument), and who waits for its reply. */
interface Pending<T> {
  keys: string[];
  fields: string;
  done: (error: unknown, reply?: T) => void;
}

type AdmitReply = number[];

/** A command that takes longer fails: an admission must not wait on a Redis that hangs. */
const COMMAND_TIMEOUT_MS = 500;
const CONNECT_TIMEOUT_MS = 1_000;
/** Windows outlive their minute a little, for a replica whose clock is slightly behind. */
const WINDOW_GRACE_MS = MINUTE_MS;
/** A budget period's state outlives the period by a day, for calls that finish after it turned. */
const BUDGET_GRACE_MS = 86_400_000;

export interface RedisLimitsStoreOptions {
  url: string;
  leaseMs: number;
  /** Every key starts with it (tests use one of their own). */
  keyPrefix?: string;
}

/** A script's fields for one admission or release, in one argument; none contains a comma (numbers, ids, periods). */
const joinFields = (fields: (string | number)[]): string => fields.join(',');

type ScriptCommand = (numberOfKeys: number, ...keysAndArgs: string[]) => Promise<AdmitReply[] | number>;

/**
 * Limits shared by every replica through one Redis (a single server or a primary with replicas; not Redis
 * Cluster, as one admission's keys span an organization and a caller key). Each admission is one Lua script,
 * one round trip (a second one only when the budget period must be loaded from the ledger); the calls that
 * finish in the same turn of the event loop are released by one script together.
 *
 * Redis unreachable: commands fail at once (no offline queue, no retries, short timeouts) with
 * LimitsUnavailableError, and the client reconnects in the background, so calls are never held up.
 */
export class RedisLimitsStore extends LimitsStore implements OnModuleInit, OnApplicationShutdown {
  private readonly redis: Redis;
  private readonly keyPrefix: string;
  private reachable: boolean | undefined;
  /** Finished calls waiting for the end of this turn of the event loop, to be released together. */
  private pendingReleases: Pending<void>[] = [];
  /** Admissions made after the first one of this turn of the event loop, to be sent together at its end. */
  private pendingAdmissions: Pending<AdmitReply>[] = [];
  /** An admission was sent in this turn of the event loop: the next ones wait for its end. */
  private admittedThisTurn = false;

  constructor(metrics: MetricsService, options: RedisLimitsStoreOptions) {
    super(metrics, options.leaseMs);
    this.keyPrefix = options.keyPrefix ?? 'llm-gateway:limits:';
    this.redis = new Redis(options.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: CONNECT_TIMEOUT_MS,
      commandTimeout: COMMAND_TIMEOUT_MS,
      // At shutdown, a socket that does not close is destroyed this soon (ioredis waits 2 s, even for a dead one).
      disconnectTimeout: COMMAND_TIMEOUT_MS,
      // Reconnect for ever, at most a second apart.
      retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
    });
    this.redis.defineCommand('limitsAdmit', { lua: ADMIT_SCRIPT });
    this.redis.defineCommand('limitsFinish', { lua: FINISH_SCRIPT });
    // State changes only: while Redis is down, every reconnection attempt fails, once a second.
    this.redis.on('ready', () => {
      if (this.reachable === false) this.logger.log('Redis is reachable again: rate limits are checked');
      this.reachable = true;
    });
    this.redis.on('error', (error: Error) => {
      if (this.reachable !== false) this.logger.warn(`Redis is unreachable, rate limits cannot be checked: ${error.message}`);
      this.reachable = false;
    });
  }

  /** Boot waits for the first connection, briefly, so that the first calls find it; a Redis that is down does not stop the boot. */
  async onModuleInit(): Promise<void> {
    if (this.redis.status === 'ready') return;
    await once(this.redis, 'ready', { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS) }).catch(() => undefined);
  }

  async ping(): Promise<void> {
    await this.timed('ping', () => this.redis.ping());
  }

  /** Calls are over by now: their releases are sent, QUIT lets the last replies arrive; without a connection there is nothing to wait for. */
  async onApplicationShutdown(): Promise<void> {
    await this.sendReleases();
    if (this.redis.status === 'ready') await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
  }

  /**
   * The first admission of a turn of the event loop is sent at once, so that at low load its round trip overlaps
   * the call's own work; the ones made after it in the same turn (under load, many requests arrive together) are
   * sent at the turn's end in one script: one round trip for all of them, each still checked on its own, in order.
   */
  protected async execute(plan: AdmissionPlan, periodUsage?: number): Promise<PlanOutcome> {
    const keys = plan.windows.map((check) => this.key(check.counter, check.window));
    const args: (string | number)[] = [plan.now, plan.windows.length, plan.calls ? 1 : 0, plan.budget ? 1 : 0];
    for (const check of plan.windows) args.push(check.max, check.cost, check.endsAt - plan.now + WINDOW_GRACE_MS);
    const budgetTtl = plan.budget ? plan.budget.endsAt - plan.now + BUDGET_GRACE_MS : 0;
    if (plan.calls) {
      keys.push(this.key(plan.calls.counter));
      // Kept as long as the budget: a dead call's reservation is charged when the next call comes, however late.
      // Renewed to a lease more than that, so that the calls that follow find it long enough.
      const callsTtl = Math.max(this.leaseMs, budgetTtl);
      args.push(plan.calls.max ?? -1, plan.calls.member, plan.calls.leaseUntil, callsTtl, callsTtl + this.leaseMs);
    }
    if (plan.budget) {
      keys.push(this.key(plan.budget.counter, plan.budget.period));
      args.push(plan.budget.max, plan.budget.cost, plan.budget.period, budgetTtl, periodUsage ?? '');
    }
    const reply = await new Promise<AdmitReply>((resolve, reject) => {
      // The admit script reads the admission's count of keys before its other fields.
      const admission: Pending<AdmitReply> = { keys, fields: `${keys.length},${joinFields(args)}`, done: (error, reply) => (error === undefined ? resolve(reply!) : reject(error)) };
      if (this.admittedThisTurn) return void this.pendingAdmissions.push(admission);
      this.admittedThisTurn = true;
      setImmediate(() => {
        this.admittedThisTurn = false;
        void this.sendAdmissions();
      });
      void this.runScripts('limitsAdmit', 'admit', [admission]);
    });
    const [failedBits, openCalls, budgetUsed, budgetReserved, ...windowUsed] = reply;
    if (failedBits === -1) return { needsPeriodUsage: true };
    const checks: LimitName[] = [...plan.windows.map((check) => check.limit), 'concurrentRequests', 'tokenBudget'];
    const failed = checks.filter((_, bit) => (failedBits >> bit) & 1);
    return { failed, windowUsed, openCalls, budgetUsed, budgetReserved };
  }

  /**
   * Sent at the end of this turn of the event loop (setImmediate: after the I/O callbacks, so after the answer
   * that ended the call is written), together with every other call that ended in the same turn: one round
   * trip for all of them. Resolves once Redis has run it.
   */
  protected release(reservation: Reservation, actual: number): Promise<void> {
    const keys = [this.key(reservation.calls)];
    if (reservation.tokens) keys.push(this.key(reservation.tokens.counter, reservation.tokens.window));
    if (reservation.budget) keys.push(this.key(reservation.budget.counter, reservation.budget.period));
    const fields = joinFields([reservation.member, reservation.estimatedTokens, actual, reservation.tokens ? 1 : 0, reservation.budget ? 1 : 0]);
    return new Promise((resolve, reject) => {
      this.pendingReleases.push({ keys, fields, done: (error) => (error === undefined ? resolve() : reject(error)) });
      if (this.pendingReleases.length === 1) setImmediate(() => void this.sendReleases());
    });
  }

  private sendReleases(): Promise<void> {
    const pending = this.pendingReleases;
    this.pendingReleases = [];
    return this.runScripts('limitsFinish', 'finish', pending);
  }

  private sendAdmissions(): Promise<void> {
    const pending = this.pendingAdmissions;
    this.pendingAdmissions = [];
    return this.runScripts('limitsAdmit', 'admit', pending);
  }

  /**
   * Runs the script for the pending parts, PER_SCRIPT at a time, and hands each its own reply (the admit script
   * answers one per admission; the finish script one count for all). Never rejects: a failure goes to each part.
   */
  private async runScripts<T>(name: 'limitsAdmit' | 'limitsFinish', operation: string, pending: Pending<T>[]): Promise<void> {
    for (let start = 0; start < pending.length; start += PER_SCRIPT) {
      const batch = pending.slice(start, start + PER_SCRIPT);
      const keys: string[] = [];
      const args: string[] = [];
      for (const part of batch) {
        keys.push(...part.keys);
        args.push(part.fields);
      }
      try {
        const reply = await this.timed(operation, () => this.script(name)(keys.length, ...keys, ...args));
        batch.forEach((part, index) => part.done(undefined, (Array.isArray(reply) ? reply[index] : undefined) as T));
      } catch (error) {
        batch.forEach((part) => part.done(error));
      }
    }
  }

  protected async read(plan: UsagePlan): Promise<UsageReading> {
    const pipeline = this.redis.pipeline();
    if (plan.requests) pipeline.get(this.key(plan.requests.counter, plan.requests.window));
    if (plan.tokens) pipeline.get(this.key(plan.tokens.counter, plan.tokens.window));
    if (plan.calls) pipeline.zcount(this.key(plan.calls.counter), `(${plan.now}`, '+inf');
    if (plan.budget) pipeline.hmget(this.key(plan.budget.counter, plan.budget.period), 'used', 'reserved');
    const replies = ((await this.timed('usage', () => pipeline.exec())) ?? []).map(([error, value]) => {
      if (error) throw new LimitsUnavailableError(`Redis usage failed: ${error.message}`, { cause: error });
      return value;
    });
    // The replies come in the order the commands were queued.
    const next = <T>(queued: unknown): T | undefined => (queued ? (replies.shift() as T) : undefined);
    const requests = next<string | null>(plan.requests);
    const tokens = next<string | null>(plan.tokens);
    const openCalls = next<number>(plan.calls);
    const budget = next<[string | null, string | null]>(plan.budget);
    return {
      requestsUsed: Number(requests ?? 0),
      tokensUsed: Number(tokens ?? 0),
      openCalls: openCalls ?? 0,
      budget: budget?.[0] == null ? null : { used: Number(budget[0]), reserved: Number(budget[1]) },
    };
  }

  private key(counter: string, part?: string | number): string {
    return part === undefined ? `${this.keyPrefix}${counter}` : `${this.keyPrefix}${counter}:${part}`;
  }

  private script(name: 'limitsAdmit' | 'limitsFinish'): ScriptCommand {
    return (this.redis as unknown as Record<typeof name, ScriptCommand>)[name].bind(this.redis);
  }

  /** Times one round trip; any failure of it means the limits cannot be checked. */
  private async timed<T>(operation: string, command: () => Promise<T>): Promise<T> {
    const end = this.metrics.limitsRedisDuration.startTimer({ operation });
    try {
      return await command();
    } catch (error) {
      throw new LimitsUnavailableError(`Redis ${operation} failed: ${(error as Error).message}`, { cause: error });
    } finally {
      end();
    }
  }
}
