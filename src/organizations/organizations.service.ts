import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { Environment } from '../config/environment';
import { databaseUnavailable, isDatabaseUnavailable, isUniqueViolation } from '../database/database.errors';
import { GatewayError } from '../common/errors/gateway-error';
import { ModelCatalogService } from '../litellm/model-catalog.service';
import { limitsSettings } from '../limits/limits.settings';
import type { OrganizationLimits } from '../limits/limits.types';
import { CreateOrganizationDto, OrganizationLimitsDto, UpdateOrganizationDto } from './dto/organization.dto';
import { OrganizationChangeFeed } from './organization-change-feed';
import { DEFAULT_LLM_FALLBACK_MODEL, DEFAULT_LLM_MODEL, Organization } from './organization.entity';

/** What a chat call needs to know about an organization: its models and its limits. */
export interface OrganizationPreferences {
  id: string;
  llmModel: string;
  llmFallbackModel: string | null;
  limits: OrganizationLimits;
}

/** The limits, as the limits store takes them, from the stored organization. */
export function limitsOf(organization: Pick<Organization, keyof OrganizationLimits>): OrganizationLimits {
  const { requestsPerMinute, tokensPerMinute, concurrentRequests, tokenBudget, budgetPeriod } = organization;
  return { requestsPerMinute, tokensPerMinute, concurrentRequests, tokenBudget, budgetPeriod };
}

export interface OrganizationPage {
  items: Organization[];
  total: number;
  limit: number;
  offset: number;
}

/** Bounds the memory the preference cache can take; far above any real number of tenants. */
const MAX_CACHED_ORGANIZATIONS = 10_000;

/** The limits a request sets: those it names (null included, meaning unlimited), none of those it leaves out. */
function definedLimits(limits: OrganizationLimitsDto | undefined): Partial<OrganizationLimits> {
  return Object.fromEntries(Object.entries(limits ?? {}).filter(([, value]) => value !== undefined));
}

function organizationNotFound(id: string): GatewayError {
  return new GatewayError('ORGANIZATION_NOT_FOUND', `Organization ${id} does not exist`);
}

@Injectable()
export class OrganizationsService {
  private readonly logger = new Logger(OrganizationsService.name);
  private readonly cacheTtlMs: number;
  /** The limits a new organization gets where its request names none (LIMITS_DEFAULT_*). */
  private readonly defaultLimits: OrganizationLimits;
  /** Preferences by organization id. Dropped on PATCH/DELETE, here and, through the change feed, everywhere. */
  private readonly preferenceCache = new Map<string, { preferences: OrganizationPreferences; expiresAt: number }>();
  /** Reads in flight, one per organization: the calls that miss the cache together wait for the same read. */
  private readonly loading = new Map<string, Promise<OrganizationPreferences>>();
  private changesSeen = 0;

  constructor(
    @InjectRepository(Organization) private readonly organizations: Repository<Organization>,
    private readonly modelCatalog: ModelCatalogService,
    private readonly changes: OrganizationChangeFeed,
    config: ConfigService<Environment, true>,
  ) {
    this.cacheTtlMs = config.get('ORG_CACHE_TTL_MS', { infer: true });
    this.defaultLimits = limitsSettings(config).organizationDefaults;
    changes.onChange((id) => this.forget(id));
  }

  async create(dto: CreateOrganizationDto): Promise<Organization> {
    const llmModel = dto.llmModel ?? DEFAULT_LLM_MODEL;
    const llmFallbackModel = dto.llmFallbackModel === undefined ? DEFAULT_LLM_FALLBACK_MODEL : dto.llmFallbackModel;
    await this.checkModels({ llmModel, llmFallbackModel }, { llmModel, llmFallbackModel });

    let id: string;
    try {
      // insert(), not save(): save() would quietly update an organization whose id is taken.
      const limits = { ...this.defaultLimits, ...definedLimits(dto.limits) };
      const inserted = await this.organizations.insert({ id: dto.id, name: dto.name, llmModel, llmFallbackModel, ...limits });
      id = inserted.identifiers[0].id as string;
    } catch (error) {
      if (isUniqueViolation(error)) {
        throw new GatewayError('ORGANIZATION_EXISTS', `Organization ${dto.id} already exists`);
      }
      throw this.translate(error);
    }
    return this.findOne(id);
  }

  async findAll(limit: number, offset: number): Promise<OrganizationPage> {
    try {
      const [items, total] = await this.organizations.findAndCount({
        order: { createdAt: 'ASC', id: 'ASC' },
        take: limit,
        skip: offset,
      });
      return { items, total, limit, offset };
    } catch (error) {
      throw this.translate(error);
    }
  }

  async findOne(id: string): Promise<Organization> {
    let organization: Organization | null;
    try {
      organization = await this.organizations.findOneBy({ id });
    } catch (error) {
      throw this.translate(error);
    }
    if (!organization) throw organizationNotFound(id);
    return organization;
  }

  async update(id: string, dto: UpdateOrganizationDto): Promise<Organization> {
    const current = await this.findOne(id);
    const next = {
      llmModel: dto.llmModel ?? current.llmModel,
      llmFallbackModel: dto.llmFallbackModel === undefined ? current.llmFallbackModel : dto.llmFallbackModel,
    };
    await this.checkModels(next, { llmModel: dto.llmModel, llmFallbackModel: dto.llmFallbackModel });

    const changes: Partial<Organization> = {};
    if (dto.name !== undefined) changes.name = dto.name;
    if (dto.llmModel !== undefined) changes.llmModel = dto.llmModel;
    if (dto.llmFallbackModel !== undefined) changes.llmFallbackModel = dto.llmFallbackModel;
    Object.assign(changes, definedLimits(dto.limits));
    if (Object.keys(changes).length > 0) {
      try {
        await this.organizations.update({ id }, changes);
      } catch (error) {
        throw this.translate(error);
      }
      this.forget(id);
      await this.changes.publish(id);
    }
    return this.findOne(id);
  }

  async remove(id: string): Promise<void> {
    let affected: number | null | undefined;
    try {
      ({ affected } = await this.organizations.delete({ id }));
    } catch (error) {
      throw this.translate(error);
    }
    this.forget(id);
    if (!affected) throw organizationNotFound(id);
    await this.changes.publish(id);
  }

  /**
   * The chat hot path: served from memory for ORG_CACHE_TTL_MS. When the database is unreachable, an
   * organization seen before keeps being served from its last known preferences; others get 503.
   */
  async getPreferences(id: string): Promise<OrganizationPreferences> {
    const cached = this.preferenceCache.get(id);
    if (cached && cached.expiresAt > Date.now()) return cached.preferences;
    // A thousand streams opening together when the entry has expired make one query, not a thousand.
    let load = this.loading.get(id);
    if (!load) {
      const started = this.loadPreferences(id, cached?.preferences).finally(() => {
        if (this.loading.get(id) === started) this.loading.delete(id);
      });
      load = started;
      this.loading.set(id, load);
    }
    return load;
  }

  /** An organization changed (or, without an id, any may have): its cached preferences and reads in flight are stale. */
  private forget(id?: string): void {
    this.changesSeen += 1;
    if (id === undefined) {
      this.preferenceCache.clear();
      this.loading.clear();
    } else {
      this.preferenceCache.delete(id);
      this.loading.delete(id);
    }
  }

  private async loadPreferences(id: string, cached: OrganizationPreferences | undefined): Promise<OrganizationPreferences> {
    const changesSeen = this.changesSeen;
    let organization: Organization | null;
    try {
      organization = await this.organizations.findOne({
        where: { id },
        select: {
          id: true,
          llmModel: true,
          llmFallbackModel: true,
          requestsPerMinute: true,
          tokensPerMinute: true,
          concurrentRequests: true,
          tokenBudget: true,
          budgetPeriod: true,
        },
      });
    } catch (error) {
      if (cached && isDatabaseUnavailable(error)) {
        this.logger.warn(`Database unreachable: serving organization ${id} from its cached preferences`);
        return cached;
      }
      throw this.translate(error);
    }
    if (!organization) {
      this.preferenceCache.delete(id);
      throw organizationNotFound(id);
    }

    const preferences = { id, llmModel: organization.llmModel, llmFallbackModel: organization.llmFallbackModel, limits: limitsOf(organization) };
    // A change announced while this read was under way may not be in it: the answer is served, not kept.
    if (changesSeen !== this.changesSeen) return preferences;
    this.preferenceCache.delete(id); // re-inserted last, so the oldest entry is the first to go
    this.preferenceCache.set(id, { preferences, expiresAt: Date.now() + this.cacheTtlMs });
    if (this.preferenceCache.size > MAX_CACHED_ORGANIZATIONS) {
      this.preferenceCache.delete(this.preferenceCache.keys().next().value as string);
    }
    return preferences;
  }

  /**
   * The fallback must differ from the primary, and every model being set must be a chat model LiteLLM serves.
   * When LiteLLM cannot be asked, nothing unchecked is stored: the write is refused with 503.
   */
  private async checkModels(
    next: { llmModel: string; llmFallbackModel: string | null },
    changing: { llmModel?: string; llmFallbackModel?: string | null },
  ): Promise<void> {
    if (next.llmFallbackModel !== null && next.llmFallbackModel === next.llmModel) {
      throw new GatewayError('FALLBACK_SAME_AS_PRIMARY', `llmFallbackModel must differ from llmModel (both are ${next.llmModel})`);
    }
    const toCheck = Object.entries(changing).filter((entry): entry is [string, string] => typeof entry[1] === 'string');
    if (toCheck.length === 0) return;

    let available: string[];
    try {
      // Embedding models cannot serve a chat, so they are not offered.
      available = await this.modelCatalog.listChatModels();
    } catch (error) {
      const reason = error instanceof GatewayError ? error.message : 'LiteLLM could not be asked';
      throw new GatewayError(
        'MODEL_CATALOG_UNAVAILABLE',
        `Cannot check the models against LiteLLM's list (${reason}); nothing was stored`,
        { 'retry-after': '5' },
      );
    }
    const unknown = toCheck.filter(([, model]) => !available.includes(model));
    if (unknown.length > 0) {
      const named = unknown.map(([field, model]) => `${field} "${model}"`).join(' and ');
      throw new GatewayError('UNKNOWN_MODEL', `${named} not served by LiteLLM as a chat model. Available models: ${available.join(', ')}`);
    }
  }

  private translate(error: unknown): unknown {
    return isDatabaseUnavailable(error) ? databaseUnavailable() : error;
  }
}
