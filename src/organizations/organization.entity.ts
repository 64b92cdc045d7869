import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

export const DEFAULT_LLM_MODEL = 'gpt-4o';
export const DEFAULT_LLM_FALLBACK_MODEL = 'claude-3-5-sonnet';

/** A tenant, and the models its calls are served with. Defaults match the migration's. */
@Entity({ name: 'organizations' })
// The listing's order: oldest first, id as tie-breaker.
@Index('IDX_organizations_created_at', ['createdAt', 'id'])
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

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
