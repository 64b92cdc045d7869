import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type OpenAI from 'openai';
import { Environment } from '../config/environment';
import { LlmClientProvider } from './llm-client.provider';
import { toUpstreamError } from './litellm.errors';

export interface CatalogModel {
  id: string;
  /** LiteLLM's `mode` (chat, embedding, ...), when its config says. */
  mode?: string;
}

/** The label of a model that is not in the catalog: callers choose model names, labels must stay few. */
export const OTHER_MODEL_LABEL = 'other';

/** The models LiteLLM serves (its /v1/models), cached for MODELS_CACHE_TTL_MS. */
@Injectable()
export class ModelCatalogService {
  private readonly client: OpenAI;
  private readonly ttlMs: number;
  private cache?: { models: Promise<CatalogModel[]>; expiresAt: number };
  /** The names of the last list that arrived, for metric labels (read on the hot path, never awaited). */
  private known = new Set<string>();
  /** Background refreshes are spaced, so that a LiteLLM that is down is not asked once per call. */
  private nextBackgroundRefreshAt = 0;

  constructor(clientProvider: LlmClientProvider, config: ConfigService<Environment, true>) {
    this.client = clientProvider.client;
    this.ttlMs = config.get('MODELS_CACHE_TTL_MS', { infer: true });
  }

  /** Every model name, sorted. */
  async listModels(): Promise<string[]> {
    return (await this.catalog()).map((model) => model.id);
  }

  /** The models that can serve a chat: all but those LiteLLM marks as embedding models. */
  async listChatModels(): Promise<string[]> {
    return (await this.catalog()).filter((model) => model.mode !== 'embedding').map((model) => model.id);
  }

  /**
   * A metric label for a model name: the name when LiteLLM serves it, else `other`, so that the number of
   * series stays bounded whatever callers send. A stale list is refreshed in the background.
   */
  metricLabel(model: string): string {
    const now = Date.now();
    if ((!this.cache || this.cache.expiresAt <= now) && now >= this.nextBackgroundRefreshAt) {
      this.nextBackgroundRefreshAt = now + Math.max(this.ttlMs, 1_000);
      this.catalog().catch(() => undefined);
    }
    return this.known.has(model) ? model : OTHER_MODEL_LABEL;
  }

  /** Concurrent callers share one request to LiteLLM; a failure is not cached. */
  private async catalog(): Promise<CatalogModel[]> {
    const now = Date.now();
    if (this.cache && this.cache.expiresAt > now) return this.cache.models;
    const models = this.fetchModels();
    this.cache = { models, expiresAt: now + this.ttlMs };
    models.then(
      (list) => (this.known = new Set(list.map((model) => model.id))),
      () => {
        if (this.cache?.models === models) this.cache = undefined;
      },
    );
    return models;
  }

  private async fetchModels(): Promise<CatalogModel[]> {
    try {
      const models: CatalogModel[] = [];
      for await (const model of this.client.models.list()) {
        const mode = (model as { mode?: unknown }).mode;
        models.push({ id: model.id, ...(typeof mode === 'string' && { mode }) });
      }
      return models.sort((a, b) => a.id.localeCompare(b.id));
    } catch (error) {
      throw toUpstreamError(error);
    }
  }
}
