import { Check, Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import type { BudgetPeriod } from '../config/environment';

export const DEFAULT_LLM_MODEL = 'gpt-4o';
export const DEFAULT_LLM_FALLBACK_MODEL = 'claude-3-5-sonnet';

/** A tenant, and the models its calls are served with. Defaults match the migration's. */
@Entity({ name: 'organizations' })
// The listing's order: oldest first, id as tie-breaker.
@Index('IDX_organizations_created_at', ['createdAt', 'id'])
@Check('CHK_organizations_budget_period', `"budget_period" IN ('day', 'month')`)
export class Organization {
  @PrimaryGeneratedColumn('uuid', { name: 'id' })
  id!: string;

  @Column({ name: 'name', type: 'text' })
  name!: string;

  @Column({ name: 'llm_model', type: 'text', default: DEFAULT_LLM_MODEL })
  llmModel!: string;

  /** null: no fallback, a failure of the primary model goes back to the caller. */
  @Column({ name: 'llm_fallback_model', type: 'text', nullable: true, default: DEFAULT_LLM_FALLBACK_MODEL })
  llmFallbackModel!: string | null;

  // Limits (null: unlimited), enforced by the pipeline's admission stage; see limits/.
  @Column({ name: 'requests_per_minute', type: 'integer', nullable: true })
  requestsPerMinute!: number | null;

  @Column({ name: 'tokens_per_minute', type: 'integer', nullable: true })
  tokensPerMinute!: number | null;

  @Column({ name: 'concurrent_requests', type: 'integer', nullable: true })
  concurrentRequests!: number | null;

  /** Tokens per budget period; bigint in the table, so it arrives from pg as a string. */
  @Column({ name: 'token_budget', type: 'bigint', nullable: true, transformer: { to: (value) => value, from: (value: string | null) => (value === null ? null : Number(value)) } })
  tokenBudget!: number | null;

  @Column({ name: 'budget_period', type: 'text', default: 'month' })
  budgetPeriod!: BudgetPeriod;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
