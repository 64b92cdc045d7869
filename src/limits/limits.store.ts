import { Logger } from '@nestjs/common';
import { MetricsService } from '../metrics/metrics.service';
import {
  AdmissionPlan,
  CheckedPlan,
  decideAdmission,
  describeUsage,
  planAdmission,
  PlanOutcome,
  planUsage,
  toMs,
  UsagePlan,
  UsageReading,
} from './admission-plan';
import { LimitsUnavailableError } from './limits.errors';
import type { Admission, AdmissionRequest, OrganizationLimitsUsage, Reservation, UsageRequest } from './limits.types';

const UNLIMITED: Admission = Object.freeze({ admitted: true, reservation: null, rateLimits: Object.freeze({}) });

/**
 * Rate limits and budgets: one atomic admission per call before it goes upstream, one finish() when it ends.
 * Two stores: `RedisLimitsStore`, exact across any number of replicas, and `MemoryLimitsStore` for one process
 * (no REDIS_URL). What they share (the plan of each admission, what its readings mean) lives in admission-plan.ts;
 * each store only executes a plan atomically.
 */
export abstract class LimitsStore {
  protected readonly logger = new Logger(this.constructor.name);
  /** Set at shutdown: the calls that end after it leave their reservations to their leases, with one warning for all. */
  protected closed = false;
  private warnedClosed = false;
  /** Ledger reads in flight, per budget period: after a Redis flush, one per organization, not one per call. */
  private readonly periodLoads = new Map<string, Promise<number>>();

  constructor(
    protected readonly metrics: MetricsService,
    /** How long an admitted call holds its slot and budget reservation if finish() never comes. */
    readonly leaseMs: number,
  ) {}

  /**
   * Checks every limit of the call and reserves them all, or none. Throws LimitsUnavailableError when the limits
   * cannot be checked (the caller applies LIMITS_FAIL_MODE).
   */
  async admit(request: AdmissionRequest): Promise<Admission> {
    const plan = planAdmission(request, this.leaseMs);
    if (!plan) {
      this.metrics.countAdmission('admitted');
      return UNLIMITED;
    }
    try {
      let outcome = await this.execute(plan);
      if (outcome.needsPeriodUsage) {
        const { counter, period, startsAt, endsAt } = plan.budget!;
        const periodUsage = await this.loadPeriodUsage(`${counter}:${period}`, () =>
          request.organization!.loadPeriodUsage({ startsAt: new Date(startsAt), endsAt: new Date(endsAt) }),
        );
        outcome = await this.execute(plan, periodUsage);
      }
      const admission = decideAdmission(plan, outcome as CheckedPlan);
      this.metrics.countAdmission(admission.admitted ? 'admitted' : admission.refusal.code);
      return admission;
    } catch (error) {
      if (error instanceof LimitsUnavailableError) this.metrics.countAdmission('LIMITS_UNAVAILABLE');
      throw error;
    }
  }

  /**
   * Releases the call's slot and reconciles its token reservations with what it used (an aborted stream: what
   * it is estimated to have used; not a number: the estimate). A second call for the same reservation, or one
   * after the lease ran out, does nothing. Never throws: a failure is logged (after shutdown, one warning for
   * all) and counted, the lease frees the slot.
   */
  async finish(reservation: Reservation | null, actualTotalTokens: number): Promise<void> {
    if (!reservation) return;
    const actual = Number.isFinite(actualTotalTokens) ? Math.max(0, Math.round(actualTotalTokens)) : reservation.estimatedTokens;
    try {
      await this.release(reservation, actual);
    } catch (error) {
      this.metrics.limitsFinishFailures.inc();
      if (!this.closed) this.logger.warn(`A reservation could not be released; its lease frees it: ${(error as Error).message}`);
      else if (!this.warnedClosed) {
        this.warnedClosed = true;
        this.logger.warn('Calls that end after the limits store closed leave their reservations to their leases');
      }
    }
  }

  /** Each of the organization's limits now: what is used, what remains, when it resets. */
  async usage(request: UsageRequest): Promise<OrganizationLimitsUsage> {
    const plan = planUsage(request.organizationId, request.limits, toMs(request.now));
    const reading = await this.read(plan);
    if (plan.budget && !reading.budget) {
      const { counter, period, startsAt, endsAt } = plan.budget;
      const used = await this.loadPeriodUsage(`${counter}:${period}`, () =>
        request.loadPeriodUsage({ startsAt: new Date(startsAt), endsAt: new Date(endsAt) }),
      );
      reading.budget = { used, reserved: 0 };
    }
    return describeUsage(plan, request.limits, reading);
  }

  /** Resolves when the store can be used; for readiness. */
  abstract ping(): Promise<void>;

  /**
   * Checks every counter of the plan and, only if none refuses, reserves on all of them, atomically. Without
   * `periodUsage`, a budget the store holds no state for answers needsPeriodUsage and changes nothing of it.
   */
  protected abstract execute(plan: AdmissionPlan, periodUsage?: number): Promise<PlanOutcome>;

  /** Removes the call from the open calls; only if it was there, moves its reservations to `actual`. */
  protected abstract release(reservation: Reservation, actual: number): Promise<void>;

  protected abstract read(plan: UsagePlan): Promise<UsageReading>;

  private loadPeriodUsage(key: string, load: () => Promise<number>): Promise<number> {
    let loading = this.periodLoads.get(key);
    if (!loading) {
      loading = Promise.resolve()
        .then(load)
        .then(
          (tokens) => Math.max(0, Math.round(tokens)),
          (error: unknown) => {
            throw new LimitsUnavailableError("The budget period's usage could not be read from the usage ledger", { cause: error });
          },
        );
      this.periodLoads.set(key, loading);
      void loading.finally(() => this.periodLoads.delete(key)).catch(() => undefined);
    }
    return loading;
  }
}
