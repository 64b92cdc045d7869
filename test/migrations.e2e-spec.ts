import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../src/database/data-source';
import { createTestDatabase, TestDatabase } from './support/database';
import { temporaryDataDir } from './support/gateway';

/** The same migrations, up, down and up again, on the real PostgreSQL server and on the embedded one. */
describe.each([
  ['PostgreSQL server', 'server'],
  ['embedded PGlite', 'embedded'],
] as const)('migrations on %s', (_label, mode) => {
  let database: TestDatabase | undefined;
  let dataSource: DataSource;

  beforeAll(async () => {
    if (mode === 'server') database = await createTestDatabase();
    dataSource = new DataSource(
      dataSourceOptions({ DATABASE_URL: database?.url, DATA_DIR: temporaryDataDir(), MIGRATIONS_RUN: false }),
    );
    await dataSource.initialize();
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await database?.drop();
  });

  const tableExists = async (table: string) => (await dataSource.query(`SELECT to_regclass('public.${table}') AS name`))[0].name !== null;
  const organizationsTableExists = () => tableExists('organizations');

  it('creates organizations with the documented columns and defaults, drops it, and creates it again', async () => {
    await dataSource.runMigrations();
    expect(await organizationsTableExists()).toBe(true);

    const [row] = await dataSource.query(`INSERT INTO organizations (name) VALUES ('Defaults') RETURNING *`);
    expect(row).toMatchObject({ name: 'Defaults', llm_model: 'gpt-4o', llm_fallback_model: 'claude-3-5-sonnet' });
    expect(row.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(row.created_at).toBeInstanceOf(Date);
    const columns = await dataSource.query(
      `SELECT column_name, data_type, is_nullable FROM information_schema.columns
       WHERE table_name = 'organizations' ORDER BY column_name`,
    );
    expect(columns).toEqual([
      { column_name: 'budget_period', data_type: 'text', is_nullable: 'NO' },
      { column_name: 'concurrent_requests', data_type: 'integer', is_nullable: 'YES' },
      { column_name: 'created_at', data_type: 'timestamp with time zone', is_nullable: 'NO' },
      { column_name: 'id', data_type: 'uuid', is_nullable: 'NO' },
      { column_name: 'llm_fallback_model', data_type: 'text', is_nullable: 'YES' },
      { column_name: 'llm_model', data_type: 'text', is_nullable: 'NO' },
      { column_name: 'name', data_type: 'text', is_nullable: 'NO' },
      { column_name: 'requests_per_minute', data_type: 'integer', is_nullable: 'YES' },
      { column_name: 'token_budget', data_type: 'bigint', is_nullable: 'YES' },
      { column_name: 'tokens_per_minute', data_type: 'integer', is_nullable: 'YES' },
      { column_name: 'updated_at', data_type: 'timestamp with time zone', is_nullable: 'NO' },
    ]);
    expect(row).toMatchObject({ requests_per_minute: null, token_budget: null, budget_period: 'month' });
    await expect(dataSource.query(`UPDATE organizations SET budget_period = 'week'`)).rejects.toThrow(/CHK_organizations_budget_period/);

    // Every migration's down(), newest first, then every up() again.
    for (const _ of dataSource.migrations) await dataSource.undoLastMigration();
    expect(await organizationsTableExists()).toBe(false);
    expect(await tableExists('usage_records')).toBe(false);

    await dataSource.runMigrations();
    expect(await organizationsTableExists()).toBe(true);
    expect(await dataSource.showMigrations()).toBe(false); // nothing pending
  });

  it('creates usage_records keyed by (call_id, attempt), so a replayed record is stored once', async () => {
    const record = `('6f1c2f9e-2a59-4c43-9d2b-3a4f6f1f0e11', 1, 'req-1', '/v1/chat', 'chat', 'gpt-4o', 'ok', 3, 4, 7, now(), 12)`;
    const insert = `INSERT INTO usage_records (call_id, attempt, request_id, route, operation, model, outcome,
      prompt_tokens, completion_tokens, total_tokens, started_at, duration_ms) VALUES ${record} ON CONFLICT DO NOTHING`;
    await dataSource.query(insert);
    await dataSource.query(insert);

    const rows = await dataSource.query(`SELECT attempt, total_tokens, tokens_estimated, cost_usd FROM usage_records`);
    expect(rows).toEqual([{ attempt: 1, total_tokens: 7, tokens_estimated: false, cost_usd: null }]);
    const indexes = await dataSource.query(`SELECT indexname FROM pg_indexes WHERE tablename = 'usage_records' ORDER BY indexname`);
    expect(indexes.map((index: { indexname: string }) => index.indexname)).toEqual([
      'IDX_usage_records_organization_started_at',
      'IDX_usage_records_started_at',
      'PK_usage_records',
    ]);
  });

  it('agrees with the entity: TypeORM finds no schema change to generate', async () => {
    const sql = await dataSource.driver.createSchemaBuilder().log();
    expect(sql.upQueries.map((query) => query.query)).toEqual([]);
  });
});
