import { MigrationInterface, QueryRunner } from 'typeorm';

/** Rate limits and a token budget per organization; null is unlimited. */
export class AddOrganizationLimits1764489600000 implements MigrationInterface {
  name = 'AddOrganizationLimits1764489600000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      ALTER TABLE "organizations"
        ADD COLUMN "requests_per_minute" integer,
        ADD COLUMN "tokens_per_minute" integer,
        ADD COLUMN "concurrent_requests" integer,
        ADD COLUMN "token_budget" bigint,
        ADD COLUMN "budget_period" text NOT NULL DEFAULT 'month',
        ADD CONSTRAINT "CHK_organizations_budget_period" CHECK ("budget_period" IN ('day', 'month'))
    `);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      ALTER TABLE "organizations"
        DROP CONSTRAINT "CHK_organizations_budget_period",
        DROP COLUMN "budget_period",
        DROP COLUMN "token_budget",
        DROP COLUMN "concurrent_requests",
        DROP COLUMN "tokens_per_minute",
        DROP COLUMN "requests_per_minute"
    `);
  }
}
