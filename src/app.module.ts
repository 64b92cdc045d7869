import { DynamicModule, Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { Environment } from './config/environment';
import { LlmModule } from './llm/llm.module';

@Module({})
export class AppModule {
  /** Takes the environment createApp() validated, so it is read when the app is created, not when imported. */
  static forRoot(environment: Environment): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot({
          isGlobal: true,
          cache: true,
          ignoreEnvFile: true,
          validate: () => environment,
        }),
        LlmModule,
      ],
    };
  }
}
