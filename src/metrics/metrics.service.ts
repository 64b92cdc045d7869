import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The gateway's Prometheus metrics, in a registry of its own (not prom-client's global one), so that
 * several app instances in one process, as in the tests, do not collide.
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();

  readonly httpRequestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Duration of HTTP requests, by route template and status',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly httpRequestsInFlight = new Gauge({
    name: 'http_requests_in_flight',
    help: 'HTTP requests being served (streams included)',
    registers: [this.registry],
  });

  readonly upstreamRequests = new Counter({
    name: 'llm_upstream_requests_total',
    help: 'Calls to LiteLLM, by model, operation and outcome (success or the error code)',
    labelNames: ['model', 'operation', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly upstreamDuration = new Histogram({
    name: 'llm_upstream_request_duration_seconds',
    help: 'Duration of calls to LiteLLM (streams: until the last event), by model and operation',
    labelNames: ['model', 'operation'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });

  readonly fallbacks = new Counter({
    name: 'llm_fallbacks_total',
    help: "Fallback attempts: organization calls whose model failed and that tried the fallback model, by the first model's error code",
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly organizationChangeFeedListening = new Gauge({
    name: 'organization_change_feed_listening',
    help: '1 while this instance hears organization changes made through others (PostgreSQL LISTEN); 0 while it relies on ORG_CACHE_TTL_MS',
    registers: [this.registry],
  });

  readonly usageRecordsPending = new Gauge({
    name: 'usage_records_pending',
    help: 'Usage records buffered in memory, not yet written to the database',
    registers: [this.registry],
  });

  readonly usageRecordsWritten = new Counter({
    name: 'usage_records_written_total',
    help: 'Usage records written to the database (a replayed record counts again, but is stored once)',
    registers: [this.registry],
  });

  readonly usageRecordsSpilled = new Counter({
    name: 'usage_records_spilled_total',
    help: 'Usage records written to the spill file under DATA_DIR while the database was unreachable',
    registers: [this.registry],
  });

  readonly usageRecordsDropped = new Counter({
    name: 'usage_records_dropped_total',
    help: 'Usage records lost: refused by the database, or the spill file could not be written. Alert on any',
    registers: [this.registry],
  });

  readonly tokens = new Counter({
    name: 'llm_tokens_total',
    help: 'Tokens of upstream attempts, by model, route and type (prompt or completion; estimated ones included)',
    labelNames: ['model', 'route', 'type'] as const,
    registers: [this.registry],
  });

  /**
   * Admissions by outcome, counted in a map and handed to limitsAdmissions when it is read: one admission per
   * call, and prom-client's inc() hashes and validates its labels each time (countAdmission()).
   */
  private readonly admissions = new Map<string, number>();

  readonly limitsAdmissions = new Counter({
    name: 'limits_admissions_total',
    help: 'Admission decisions: admitted, a refusal code (RATE_LIMITED, CONCURRENCY_LIMITED, BUDGET_EXHAUSTED), or LIMITS_UNAVAILABLE when the limits could not be checked',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
    collect: () => {
      this.limitsAdmissions.reset();
      for (const [outcome, count] of this.admissions) this.limitsAdmissions.inc({ outcome }, count);
    },
  });

  readonly limitsFailOpenAdmissions = new Counter({
    name: 'limits_fail_open_admissions_total',
    help: 'Calls admitted unchecked because the limits could not be checked (LIMITS_FAIL_MODE=open)',
    registers: [this.registry],
  });

  readonly limitsFinishFailures = new Counter({
    name: 'limits_finish_failures_total',
    help: "Ended calls whose reservation could not be released (Redis unreachable): the slot's lease frees it later",
    registers: [this.registry],
  });

  readonly limitsRedisDuration = new Histogram({
    name: 'limits_redis_duration_seconds',
    help: 'Round trips to the limits Redis, failed ones included, by operation (batch: admissions and releases; usage; ping)',
    labelNames: ['operation'] as const,
    buckets: [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  countAdmission(outcome: string): void {
    this.admissions.set(outcome, (this.admissions.get(outcome) ?? 0) + 1);
  }

  /** Counts one call to LiteLLM and times it. */
  recordUpstreamCall(operation: string, model: string, startedAt: number, outcome: string): void {
    this.upstreamRequests.inc({ model, operation, outcome });
    this.upstreamDuration.observe({ model, operation }, (performance.now() - startedAt) / 1000);
  }
}
