import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { DataSourceOptions } from 'typeorm';
import { PGliteDriver } from 'typeorm-pglite';
import { CreateOrganizations1763740800000 } from '../../migrations/1763740800000-CreateOrganizations';
import { CreateUsageRecords1764403200000 } from '../../migrations/1764403200000-CreateUsageRecords';
import { AddOrganizationLimits1764489600000 } from '../../migrations/1764489600000-AddOrganizationLimits';
import { Environment } from '../config/environment';
import { Organization } from '../organizations/organization.entity';
import { UsageRecord } from '../usage/usage-record.entity';

type DatabaseSettings = Pick<Environment, 'DATABASE_URL' | 'DATA_DIR' | 'MIGRATIONS_RUN'>;

/** Listed, not globbed: the same list works from ts-jest, from dist/ and from the TypeORM CLI. */
export const MIGRATIONS = [CreateOrganizations1763740800000, CreateUsageRecords1764403200000, AddOrganizationLimits1764489600000];

/**
 * The ONE database definition, used by the app (TypeOrmModule) and by the TypeORM CLI (cli-data-source.ts).
 * DATABASE_URL set: that PostgreSQL server. Unset: an embedded PostgreSQL (PGlite) in DATA_DIR, so
 * `npm start` needs no database server. The same migrations serve both.
 */
export function dataSourceOptions(settings: DatabaseSettings): DataSourceOptions {
  const common = {
    type: 'postgres' as const,
    entities: [Organization, UsageRecord],
    migrations: MIGRATIONS,
    migrationsTableName: 'migrations',
    migrationsRun: settings.MIGRATIONS_RUN,
    synchronize: false,
  };
  if (settings.DATABASE_URL) {
    return {
      ...common,
      url: settings.DATABASE_URL,
      // Fail fast when the server is away, rather than queueing requests behind a dead pool.
      extra: { max: 10, connectionTimeoutMillis: 3_000 },
    };
  }
  const dataDir = resolve(settings.DATA_DIR);
  mkdirSync(dataDir, { recursive: true });
  return {
    ...common,
    driver: new PGliteDriver({ dataDir }).driver,
    // PGlite ships neither uuid-ossp nor pgcrypto; gen_random_uuid() is built in.
    installExtensions: false,
    uuidExtension: 'pgcrypto',
  };
}
