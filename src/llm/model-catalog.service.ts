import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type OpenAI from 'openai';
import { Environment } from '../config/environment';
import { LlmClientProvider } from './llm-client.provider';
import { toLlmError } from './llm.errors';

/** The model names LiteLLM serves (its /v1/models), cached for MODELS_CACHE_TTL_MS. */
@Injectable()
export class ModelCatalogService {
  private readonly client: OpenAI;
  private readonly ttlMs: number;
  private cache?: { models: Promise<string[]>; expiresAt: number };

  constructor(clientProvider: LlmClientProvider, config: ConfigService<Environment, true>) {
    this.client = clientProvider.client;
    this.ttlMs = config.get('MODELS_CACHE_TTL_MS', { infer: true });
  }

  /** Concurrent callers share one request to LiteLLM; a failure is not cached. */
  async listModels(): Promise<string[]> {
    const now = Date.now();
    if (this.cache && this.cache.expiresAt > now) return this.cache.models;

    const models = this.fetchModels();
    this.cache = { models, expiresAt: now + this.ttlMs };
    models.catch(() => {
      if (this.cache?.models === models) this.cache = undefined;
    });
    return models;
  }

  private async fetchModels(): Promise<string[]> {
    try {
      const ids: string[] = [];
      for await (const model of this.client.models.list()) ids.push(model.id);
      return ids.sort();
    } catch (error) {
      throw toLlmError(error);
    }
  }
}
