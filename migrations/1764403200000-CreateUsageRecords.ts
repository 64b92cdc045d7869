import { MigrationInterface, QueryRunner } from 'typeorm';

/** The usage ledger: one row per upstream attempt (a fallback call is two), written in batches off the request path. */
export class CreateUsageRecords1764403200000 implements MigrationInterface {
  name = 'CreateUsageRecords1764403200000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "usage_records" (
        "call_id" uuid NOT NULL,
        "attempt" smallint NOT NULL,
        "request_id" text NOT NULL,
        "organization_id" uuid,
        "caller_key_id" text,
        "route" text NOT NULL,
        "operation" text NOT NULL,
        "requested_model" text,
        "model" text NOT NULL,
        "upstream_model" text,
        "fallback_reason" text,
        "outcome" text NOT NULL,
        "prompt_tokens" integer NOT NULL DEFAULT 0,
        "completion_tokens" integer NOT NULL DEFAULT 0,
        "total_tokens" integer NOT NULL DEFAULT 0,
        "cached_prompt_tokens" integer,
        "tokens_estimated" boolean NOT NULL DEFAULT false,
        "cost_usd" numeric(18,10),
        "started_at" timestamptz NOT NULL,
        "time_to_first_byte_ms" integer,
        "duration_ms" integer NOT NULL,
        "recorded_at" timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT "PK_usage_records" PRIMARY KEY ("call_id", "attempt")
      )
    `);
    // "One organization, a time range": the read API's query; and a time range across organizations.
    await queryRunner.query(`CREATE INDEX "IDX_usage_records_organization_started_at" ON "usage_records" ("organization_id", "started_at")`);
    await queryRunner.query(`CREATE INDEX "IDX_usage_records_started_at" ON "usage_records" ("started_at")`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "IDX_usage_records_started_at"`);
    await queryRunner.query(`DROP INDEX "IDX_usage_records_organization_started_at"`);
    await queryRunner.query(`DROP TABLE "usage_records"`);
  }
}
