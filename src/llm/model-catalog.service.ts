import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type OpenAI from 'openai';
import { Environment } from '../config/environment';
import { LlmClientProvider } from './llm-client.provider';
import { toLlmError } from './llm.errors';

export interface CatalogModel {
  id: string;
  /** LiteLLM's `mode` (chat, embedding, ...), when its config says. */
  mode?: string;
}

/** The models LiteLLM serves (its /v1/models), cached for MODELS_CACHE_TTL_MS. */
@Injectable()
export class ModelCatalogService {
  private readonly client: OpenAI;
  private readonly ttlMs: number;
  private cache?: { models: Promise<CatalogModel[]>; expiresAt: number };

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

  /** Concurrent callers share one request to LiteLLM; a failure is not cached. */
  private async catalog(): Promise<CatalogModel[]> {
    const now = Date.now();
    if (this.cache && this.cache.expiresAt > now) return this.cache.models;

    const models = this.fetchModels();
    this.cache = { models, expiresAt: now + this.ttlMs };
    models.catch(() => {
      if (this.cache?.models === models) this.cache = undefined;
    });
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
      throw toLlmError(error);
    }
  }
}
