import { MetricsService } from '../metrics/metrics.service';
import { AdmissionPlan, parseCallMember, PlanOutcome, UsagePlan, UsageReading } from './admission-plan';
import { LimitsStore } from './limits.store';
import type { LimitName, Reservation } from './limits.types';

/**
 * The limits of one process (no REDIS_URL: the embedded default). The same semantics as RedisLimitsStore,
 * step for step as its Lua scripts; each operation runs without an await between its checks and its
 * changes, which makes it atomic in one process. Only the current window or period of a counter is kept:
 * the past ones can no longer refuse anything.
 */
export class MemoryLimitsStore extends LimitsStore {
  private readonly windows = new Map<string, { window: number; used: number }>();
  /** Per organization: each open call (its member) and when its lease runs out. */
  private readonly openCalls = new Map<string, Map<string, number>>();
  private readonly budgets = new Map<string, { period: string; used: number; reserved: number }>();

  constructor(metrics: MetricsService, leaseMs: number) {
    super(metrics, leaseMs);
  }

  async ping(): Promise<void> {}

  protected async execute(plan: AdmissionPlan, periodUsage?: number): Promise<PlanOutcome> {
    const failed: LimitName[] = [];
    const windowUsed = plan.windows.map((check) => {
      const used = this.windowUsed(check.counter, check.window);
      if (used + check.cost > check.max) failed.push(check.limit);
      return used;
    });

    let budget: { period: string; used: number; reserved: number } | undefined;
    if (plan.budget) {
      budget = this.budgets.get(plan.budget.counter);
      if (budget?.period !== plan.budget.period) {
        if (periodUsage === undefined) return { needsPeriodUsage: true };
        budget = { period: plan.budget.period, used: periodUsage, reserved: 0 };
        this.budgets.set(plan.budget.counter, budget);
      }
    }

    let calls: Map<string, number> | undefined;
    if (plan.calls) {
      calls = this.openCalls.get(plan.calls.counter) ?? new Map<string, number>();
      this.openCalls.set(plan.calls.counter, calls);
      for (const [member, leaseUntil] of calls) {
        if (leaseUntil > plan.now) continue;
        // A call that outlived its lease is charged its whole estimate: it may have run to its end.
        const expired = parseCallMember(member);
        if (budget && expired.period === budget.period) {
          budget.used += expired.tokens;
          budget.reserved -= expired.tokens;
        }
        calls.delete(member);
      }
      if (plan.calls.max !== null && calls.size + 1 > plan.calls.max) failed.push('concurrentRequests');
    }
    if (plan.budget && budget!.used + budget!.reserved + plan.budget.cost > plan.budget.max) failed.push('tokenBudget');

    if (failed.length === 0) {
      plan.windows.forEach((check, index) => {
        windowUsed[index] += check.cost;
        this.windows.set(check.counter, { window: check.window, used: windowUsed[index] });
      });
      calls?.set(plan.calls!.member, plan.calls!.leaseUntil);
      if (budget) budget.reserved += plan.budget!.cost;
    }
    return { failed, windowUsed, openCalls: calls?.size ?? 0, budgetUsed: budget?.used ?? 0, budgetReserved: budget?.reserved ?? 0 };
  }

  protected async release(reservation: Reservation, actual: number): Promise<void> {
    if (!this.openCalls.get(reservation.calls)?.delete(reservation.member)) return;
    const estimate = reservation.estimatedTokens;
    if (reservation.tokens) {
      const tokens = this.windows.get(reservation.tokens.counter);
      if (tokens?.window === reservation.tokens.window) tokens.used += actual - estimate;
    }
    if (reservation.budget) {
      const budget = this.budgets.get(reservation.budget.counter);
      if (budget?.period === reservation.budget.period) {
        budget.reserved -= estimate;
        budget.used += actual;
      }
    }
  }

  protected async read(plan: UsagePlan): Promise<UsageReading> {
    const budget = plan.budget && this.budgets.get(plan.budget.counter);
    const leases = plan.calls ? [...(this.openCalls.get(plan.calls.counter)?.values() ?? [])] : [];
    return {
      requestsUsed: plan.requests ? this.windowUsed(plan.requests.counter, plan.requests.window) : 0,
      tokensUsed: plan.tokens ? this.windowUsed(plan.tokens.counter, plan.tokens.window) : 0,
      openCalls: leases.filter((leaseUntil) => leaseUntil > plan.now).length,
      budget: budget && budget.period === plan.budget!.period ? { used: budget.used, reserved: budget.reserved } : null,
    };
  }

  private windowUsed(counter: string, window: number): number {
    const state = this.windows.get(counter);
    return state?.window === window ? state.used : 0;
  }
}
