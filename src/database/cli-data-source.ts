import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { validateEnvironment } from '../config/environment';
import { dataSourceOptions } from './data-source';

/** For the TypeORM CLI (npm run migration:*), which wants a module whose default export is a DataSource. */
export default new DataSource({ ...dataSourceOptions(validateEnvironment(process.env)), migrationsRun: false });
