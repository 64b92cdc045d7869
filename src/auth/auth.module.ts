import { DynamicModule, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ApiKeyGuard } from './api-key.guard';
import { CallerKeys } from './caller-keys';

@Module({})
export class AuthModule {
  /** Takes the digests createApp() built, so no plain key reaches the module graph. */
  static forRoot(keys: CallerKeys): DynamicModule {
    return {
      module: AuthModule,
      providers: [{ provide: CallerKeys, useValue: keys }, { provide: APP_GUARD, useClass: ApiKeyGuard }],
    };
  }
}
