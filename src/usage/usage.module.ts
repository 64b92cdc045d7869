import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { UsageLedger } from './usage-ledger.service';
import { UsageRecord } from './usage-record.entity';
import { UsageService } from './usage.service';

/**
 * The usage ledger: its writer (fed by the pipeline's completion stage) and its read side. Imported by the
 * app module itself, so that at shutdown it writes its buffer before the database module closes the
 * connection (Nest shuts modules down from the root outwards).
 */
@Module({
  imports: [TypeOrmModule.forFeature([UsageRecord])],
  providers: [UsageLedger, UsageService],
  exports: [UsageLedger, UsageService],
})
export class UsageModule {}
