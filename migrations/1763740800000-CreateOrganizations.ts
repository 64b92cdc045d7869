import { MigrationInterface, QueryRunner } from 'typeorm';

export class CreateOrganizations1763740800000 implements MigrationInterface {
  name = 'CreateOrganizations1763740800000';

  async up(queryRunner: QueryRunner): Promise<void> {
    // gen_random_uuid() is built into PostgreSQL 13+ and PGlite: no extension needed.
    await queryRunner.query(`
      CREATE TABLE "organizations" (
        "id" uuid NOT NULL DEFAULT gen_random_uuid(),
        "name" text NOT NULL,
        "llm_model" text NOT NULL DEFAULT 'gpt-4o',
        "llm_fallback_model" text DEFAULT 'claude-3-5-sonnet',
        "created_at" timestamptz NOT NULL DEFAULT now(),
        "updated_at" timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT "PK_organizations" PRIMARY KEY ("id")
      )
    `);
    await queryRunner.query(`CREATE INDEX "IDX_organizations_created_at" ON "organizations" ("created_at", "id")`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "IDX_organizations_created_at"`);
    await queryRunner.query(`DROP TABLE "organizations"`);
  }
}
