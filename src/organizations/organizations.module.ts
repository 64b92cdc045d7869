import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { LiteLLMModule } from '../litellm/litellm.module';
import { OrganizationChangeFeed } from './organization-change-feed';
import { Organization } from './organization.entity';
import { OrganizationsController } from './organizations.controller';
import { OrganizationsService } from './organizations.service';

@Module({
  imports: [TypeOrmModule.forFeature([Organization]), LiteLLMModule],
  controllers: [OrganizationsController],
  providers: [OrganizationsService, OrganizationChangeFeed],
  exports: [OrganizationsService],
})
export class OrganizationsModule {}
