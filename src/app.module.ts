import { DynamicModule, Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuthModule } from './auth/auth.module';
import { CallerKeys } from './auth/caller-keys';
import { Environment } from './config/environment';
import { dataSourceOptions } from './database/data-source';
import { HealthModule } from './health/health.module';
import { LifecycleModule } from './lifecycle/lifecycle.module';
import { MetricsModule } from './metrics/metrics.module';
import { ApiModule } from './api/api.module';
import { OrganizationsModule } from './organizations/organizations.module';
import { UsageModule } from './usage/usage.module';

@Module({})
export class AppModule {
  /** Takes the environment createApp() validated, so it is read when the app is created, not when imported. */
  static forRoot(environment: Environment, callerKeys: CallerKeys): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot({
          isGlobal: true,
          cache: true,
          ignoreEnvFile: true,
          validate: () => environment,
        }),
        TypeOrmModule.forRootAsync({
          inject: [ConfigService],
          useFactory: (config: ConfigService<Environment, true>) => ({
            ...dataSourceOptions({
              DATABASE_URL: config.get('DATABASE_URL', { infer: true }),
              DATA_DIR: config.get('DATA_DIR', { infer: true }),
              MIGRATIONS_RUN: config.get('MIGRATIONS_RUN', { infer: true }),
            }),
            retryAttempts: 5,
            retryDelay: 2_000,
          }),
        }),
        AuthModule.forRoot(callerKeys),
        LifecycleModule,
        MetricsModule,
        OrganizationsModule,
        UsageModule,
        ApiModule,
        HealthModule,
      ],
    };
  }
}
