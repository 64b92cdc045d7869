import { OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { MetricsService } from '../metrics/metrics.service';
import { AdmissionPlan, MINUTE_MS, PlanOutcome, UsagePlan, UsageReading } from './admission-plan';
import { LimitsUnavailableError } from './limits.errors';
import { LimitsStore } from './limits.store';
import type { LimitName, Reservation } from './limits.types';
import { LIMITS_SCRIPT } from './redis-limits.scripts';

/** At most this many admissions and releases per script: Redis runs nothing else while a script runs. */
const PER_SCRIPT = 256;

type AdmitReply = number[];

/** One admission's or one release's part of a batch: its entry (see LIMITS_SCRIPT), and who waits for its reply. */
interface Pending {
  admission: boolean;
  entry: string;
  done: (error: unknown, reply?: AdmitReply) => void;
}

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

type ScriptCommand = (numberOfKeys: 0, ...entries: string[]) => Promise<(AdmitReply | number)[]>;

/**
 * Limits shared by every replica through one Redis (a single server or a primary with replicas; not Redis
 * Cluster, as one admission's keys span an organization and a caller key, and the script takes its keys in its
 * arguments: one argument per admission costs the client less to encode than its keys apart). Each admission is checked and
 * reserved by one Lua script, in one round trip (a second one only when the budget period must be loaded from
 * the ledger), and each release is reconciled by it.
 *
 * Group commit: a replica keeps one script in flight at a time. What comes while it is out (admissions, and
 * the releases of calls that ended) waits for its reply and goes in the next one, together: under load, one
 * round trip serves many calls, and the gateway's CPU per call (a loopback write and read cost more than the
 * script itself) falls as the load grows; idle, an admission goes out at once. So it does behind a lone release:
 * that is a caller calling again as soon as it has its answer, with nothing to batch with, and waiting for its
 * last call's release, then for its own admission, would put two round trips in turn before its call. Redis
 * runs one connection's scripts in the order they were sent, so the release still runs first. (Except after
 * Redis lost its scripts with the connection open, a SCRIPT FLUSH: ioredis sends a script that answered NOSCRIPT
 * again, so the release may then run after the admission, which finds that call still open: its slot held, its
 * tokens counted as estimated.)
 *
 * Redis unreachable: commands fail at once (no offline queue, no retries, short timeouts) with
 * LimitsUnavailableError, and the client reconnects in the background, so calls are never held up.
 */
export class RedisLimitsStore extends LimitsStore implements OnModuleInit, OnApplicationShutdown {
  private readonly redis: Redis;
  private readonly keyPrefix: string;
  private reachable: boolean | undefined;
  /** Admissions and releases waiting to be sent, in order. */
  private pending: Pending[] = [];
  /** Scripts in flight (one batch, a few scripts only past PER_SCRIPT parts; or a lone release and one batch). */
  private inFlight = 0;
  /** Their admissions and releases, and how many of the scripts hold an admission. */
  private partsInFlight = 0;
  private admissionsInFlight = 0;
  /** Who waits for nothing to be pending or in flight (the shutdown). */
  private drainWaiters: (() => void)[] = [];
  /** A release asked for a send at the end of this turn of the event loop. */
  private sendScheduled = false;

  constructor(metrics: MetricsService, options: RedisLimitsStoreOptions) {
    super(metrics, options.leaseMs);
    this.keyPrefix = options.keyPrefix ?? 'llm-gateway:limits:';
    if (this.keyPrefix.includes(',')) throw new Error('The limits key prefix cannot hold a comma: the script splits its fields on commas');
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
    this.redis.defineCommand('limits', { lua: LIMITS_SCRIPT });
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

  /**
   * Calls are over by now: their releases are sent, QUIT lets the last replies arrive; without a connection there
   * is nothing to wait for. A call that ends later is refused its release and left to its lease.
   */
  async onApplicationShutdown(): Promise<void> {
    await this.drain();
    this.closed = true;
    // Anything queued between the last reply and the flag goes too.
    await this.drain();
    if (this.redis.status === 'ready') await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
  }

  /** Sends what is pending and waits until nothing is in flight. */
  private async drain(): Promise<void> {
    this.send();
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * Sent at once when nothing is in flight, or a lone release, so that at low load its round trip overlaps the
   * call's own work (its request is built meanwhile); else with the next batch.
   */
  protected async execute(plan: AdmissionPlan, periodUsage?: number): Promise<PlanOutcome> {
    // The entry as LIMITS_SCRIPT reads it: its fields joined by commas (no key, member or period holds one).
    const { now, windows, calls, budget } = plan;
    let entry = `a,${now},${windows.length},${calls ? 1 : 0},${budget ? 1 : 0}`;
    for (const check of windows) entry += `,${this.key(check.counter, check.window)},${check.max},${check.cost},${check.endsAt - now + WINDOW_GRACE_MS}`;
    const budgetTtl = budget ? budget.endsAt - now + BUDGET_GRACE_MS : 0;
    if (calls) {
      // Kept as long as the budget: a dead call's reservation is charged when the next call comes, however late.
      // Renewed to a lease more than that, so that the calls that follow find it long enough.
      const callsTtl = Math.max(this.leaseMs, budgetTtl);
      entry += `,${this.key(calls.counter)},${calls.max ?? -1},${calls.member},${calls.leaseUntil},${callsTtl},${callsTtl + this.leaseMs}`;
    }
    if (budget) entry += `,${this.key(budget.counter, budget.period)},${budget.max},${budget.cost},${budget.period},${budgetTtl},${periodUsage ?? ''}`;
    const reply = await new Promise<AdmitReply>((resolve, reject) => {
      this.pending.push({
        admission: true,
        entry,
        done: (error, reply) => (error === undefined ? resolve(reply!) : reject(error)),
      });
      this.send();
    });
    const [failedBits, openCalls, budgetUsed, budgetReserved, ...windowUsed] = reply;
    if (failedBits === -1) return { needsPeriodUsage: true };
    const failed: LimitName[] = [];
    if (failedBits !== 0) {
      const checks: LimitName[] = [...windows.map((check) => check.limit), 'concurrentRequests', 'tokenBudget'];
      checks.forEach((limit, bit) => (failedBits >> bit) & 1 && failed.push(limit));
    }
    return { failed, windowUsed, openCalls, budgetUsed, budgetReserved };
  }

  /**
   * Sent at the end of this turn of the event loop at the earliest (setImmediate: after the I/O callbacks, so
   * after the answer that ended the call is written), with whatever else is waiting then, or with an admission
   * sent before. Resolves once Redis has run it.
   */
  protected release(reservation: Reservation, actual: number): Promise<void> {
    if (this.closed) return Promise.reject(new LimitsUnavailableError('The limits store is closed'));
    const { calls, member, estimatedTokens, tokens, budget } = reservation;
    const tokensKey = tokens ? this.key(tokens.counter, tokens.window) : '';
    const budgetKey = budget ? this.key(budget.counter, budget.period) : '';
    const entry = `f,${this.key(calls)},${member},${estimatedTokens},${actual},${tokensKey},${budgetKey}`;
    return new Promise((resolve, reject) => {
      this.pending.push({ admission: false, entry, done: (error) => (error === undefined ? resolve() : reject(error)) });
      if (this.sendScheduled) return;
      this.sendScheduled = true;
      setImmediate(() => {
        this.sendScheduled = false;
        this.send();
      });
    });
  }

  /**
   * Sends everything pending as one batch (one script per PER_SCRIPT parts), unless a batch is in flight: then
   * it goes when that one has its replies (admissions do not wait for a lone release). Each part gets its own
   * reply; a failure goes to each part of the failed script. When a script failed, the admissions that waited
   * fail with it too: they waited on the same Redis, and an admission must not wait for two command timeouts.
   * The releases that waited are still sent (a release that fails leaves its slot taken until its lease runs out).
   */
  private send(): void {
    if (this.pending.length === 0) return;
    const loneRelease = this.partsInFlight === 1 && this.admissionsInFlight === 0;
    if (this.inFlight > 0 && !(loneRelease && this.pending.some((part) => part.admission))) return;
    const batch = this.pending;
    this.pending = [];
    for (let start = 0; start < batch.length; start += PER_SCRIPT) {
      const parts = batch.slice(start, start + PER_SCRIPT);
      const admissions = parts.some((part) => part.admission);
      this.inFlight += 1;
      this.partsInFlight += parts.length;
      if (admissions) this.admissionsInFlight += 1;
      this.timed('batch', () => this.script()(0, ...parts.map((part) => part.entry))).then(
        (replies) => this.answered(parts.length, admissions, () => parts.forEach((part, index) => part.done(undefined, replies[index] as AdmitReply))),
        (error: unknown) =>
          this.answered(parts.length, admissions, () => {
            parts.forEach((part) => part.done(error));
            const waiting = this.pending;
            this.pending = waiting.filter((part) => !part.admission);
            for (const part of waiting) if (part.admission) part.done(error);
          }),
      );
    }
  }

  /** A script answered: its parts are answered once it no longer counts as in flight, so that what they do next can go at once. */
  private answered(parts: number, admissions: boolean, handOut: () => void): void {
    this.inFlight -= 1;
    this.partsInFlight -= parts;
    if (admissions) this.admissionsInFlight -= 1;
    handOut();
    this.send();
    if (this.inFlight === 0) this.drainWaiters.splice(0).forEach((resolve) => resolve());
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

  private script(): ScriptCommand {
    return (this.redis as unknown as { limits: ScriptCommand }).limits.bind(this.redis);
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
