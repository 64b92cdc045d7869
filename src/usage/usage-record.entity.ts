import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/** `ok`, an error code, `aborted_by_caller` or `truncated`. */
export type UsageOutcome = string;

/**
 * One upstream attempt, as the usage ledger keeps it. The key is (callId, attempt): callId is made by the
 * gateway for every call, so a replayed write never counts twice, while requestId (the id in logs and
 * x-request-id) may come from a caller who reuses it across calls.
 */
@Entity({ name: 'usage_records' })
@Index('IDX_usage_records_organization_started_at', ['organizationId', 'startedAt'])
@Index('IDX_usage_records_started_at', ['startedAt'])
export class UsageRecord {
  @PrimaryColumn({ name: 'call_id', type: 'uuid' })
  callId!: string;

  /** 1 for the model asked first, 2 for the fallback. */
  @PrimaryColumn({ name: 'attempt', type: 'smallint' })
  attempt!: number;

  @Column({ name: 'request_id', type: 'text' })
  requestId!: string;

  @Column({ name: 'organization_id', type: 'uuid', nullable: true })
  organizationId!: string | null;

  /** The caller key's short id (a digest prefix), as in the logs; null when authentication is off. */
  @Column({ name: 'caller_key_id', type: 'text', nullable: true })
  callerKeyId!: string | null;

  /** The route template the call came in on, e.g. /v1/organizations/:id/chat. */
  @Column({ name: 'route', type: 'text' })
  route!: string;

  /** chat, chat_stream or embeddings. */
  @Column({ name: 'operation', type: 'text' })
  operation!: string;

  /** The model the caller named, when it named one. */
  @Column({ name: 'requested_model', type: 'text', nullable: true })
  requestedModel!: string | null;

  /** The model the gateway asked LiteLLM for. */
  @Column({ name: 'model', type: 'text' })
  model!: string;

  /** The model the provider reported. */
  @Column({ name: 'upstream_model', type: 'text', nullable: true })
  upstreamModel!: string | null;

  /** On the fallback attempt: why the first attempt was given up. */
  @Column({ name: 'fallback_reason', type: 'text', nullable: true })
  fallbackReason!: string | null;

  @Column({ name: 'outcome', type: 'text' })
  outcome!: UsageOutcome;

  @Column({ name: 'prompt_tokens', type: 'integer', default: 0 })
  promptTokens!: number;

  @Column({ name: 'completion_tokens', type: 'integer', default: 0 })
  completionTokens!: number;

  @Column({ name: 'total_tokens', type: 'integer', default: 0 })
  totalTokens!: number;

  @Column({ name: 'cached_prompt_tokens', type: 'integer', nullable: true })
  cachedPromptTokens!: number | null;

  /** True when the upstream reported no usage and the tokens were counted by the gateway. */
  @Column({ name: 'tokens_estimated', type: 'boolean', default: false })
  tokensEstimated!: boolean;

  /** LiteLLM's x-litellm-response-cost (USD), when it knew the price; a string, as numeric arrives from pg. */
  @Column({ name: 'cost_usd', type: 'numeric', precision: 18, scale: 10, nullable: true })
  costUsd!: string | null;

  @Column({ name: 'started_at', type: 'timestamptz' })
  startedAt!: Date;

  @Column({ name: 'time_to_first_byte_ms', type: 'integer', nullable: true })
  timeToFirstByteMs!: number | null;

  @Column({ name: 'duration_ms', type: 'integer' })
  durationMs!: number;

  @Column({ name: 'recorded_at', type: 'timestamptz', default: () => 'now()' })
  recordedAt!: Date;
}
