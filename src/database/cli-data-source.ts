import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { loadEnvFile, validateDatabaseEnvironment } from '../config/environment';
import { dataSourceOptions } from './data-source';

/**
 * For the TypeORM CLI (npm run migration:*), which wants a module whose default export is a DataSource.
 * It reads `.env` as the gateway does, so both act on the same database, and only the database settings:
 * a migration can run where the gateway's LiteLLM and caller keys are not.
 */
loadEnvFile();
export default new DataSource({ ...dataSourceOptions(validateDatabaseEnvironment(process.env)), migrationsRun: false });
