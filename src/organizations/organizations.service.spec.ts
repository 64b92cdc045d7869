import { GatewayError } from '../common/errors/gateway-error';
import { ConfigService } from '@nestjs/config';
import { Repository } from 'typeorm';
import { Environment, validateEnvironment } from '../config/environment';
import { ModelCatalogService } from '../litellm/model-catalog.service';
import { OrganizationChangeFeed, OrganizationChangeHandler } from './organization-change-feed';
import { Organization } from './organization.entity';
import { OrganizationsService } from './organizations.service';

const ID = '6f1c2f9e-2a59-4c43-9d2b-3a4f6f1f0e11';
const connectionRefused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

function setup(ttlMs: number) {
  const repository = { findOne: jest.fn(), update: jest.fn(), findOneBy: jest.fn(), delete: jest.fn() };
  const catalog = { listChatModels: jest.fn(async () => ['claude-3-5-sonnet', 'gpt-4o']) };
  const config = new ConfigService<Environment, true>(validateEnvironment({ LITELLM_API_KEY: 'sk-x', ORG_CACHE_TTL_MS: String(ttlMs) }));
  const changes = { handler: undefined as OrganizationChangeHandler | undefined, publish: jest.fn(async () => undefined) };
  const feed = { onChange: (handler: OrganizationChangeHandler) => (changes.handler = handler), publish: changes.publish };
  const service = new OrganizationsService(
    repository as unknown as Repository<Organization>,
    catalog as unknown as ModelCatalogService,
    feed as unknown as OrganizationChangeFeed,
    config,
  );
  return { service, repository, changes };
}

const UNLIMITED = { requestsPerMinute: null, tokensPerMinute: null, concurrentRequests: null, tokenBudget: null, budgetPeriod: 'month' as const };
const stored = { id: ID, name: 'Acme', llmModel: 'gpt-4o', llmFallbackModel: 'claude-3-5-sonnet', ...UNLIMITED } as Organization;

describe('OrganizationsService preferences cache', () => {
  it('reads the database once per TTL', async () => {
    const { service, repository } = setup(60_000);
    repository.findOne.mockResolvedValue(stored);

    await service.getPreferences(ID);
    const again = await service.getPreferences(ID);

    expect(again).toEqual({ id: ID, llmModel: 'gpt-4o', llmFallbackModel: 'claude-3-5-sonnet', limits: UNLIMITED });
    expect(repository.findOne).toHaveBeenCalledTimes(1);
  });

  it('makes one read for calls that miss the cache together', async () => {
    const { service, repository } = setup(60_000);
    let answer!: (organization: Organization) => void;
    repository.findOne.mockReturnValue(new Promise((resolve) => (answer = resolve)));

    const calls = Array.from({ length: 100 }, () => service.getPreferences(ID));
    answer(stored);

    expect(new Set(await Promise.all(calls)).size).toBe(1);
    expect(repository.findOne).toHaveBeenCalledTimes(1);
  });

  it('does not keep a read that a change overtook: the next call reads again', async () => {
    const { service, repository, changes } = setup(60_000);
    let answer!: (organization: Organization) => void;
    repository.findOne.mockReturnValueOnce(new Promise((resolve) => (answer = resolve))).mockResolvedValue({ ...stored, llmModel: 'claude-3-5-sonnet' });

    const during = service.getPreferences(ID);
    changes.handler!(ID);
    answer(stored);

    expect(await during).toMatchObject({ llmModel: 'gpt-4o' });
    expect(await service.getPreferences(ID)).toMatchObject({ llmModel: 'claude-3-5-sonnet' });
    expect(repository.findOne).toHaveBeenCalledTimes(2);
  });

  it('drops an entry when another instance says its organization changed, and everything when changes were missed', async () => {
    const { service, repository, changes } = setup(60_000);
    repository.findOne.mockResolvedValue(stored);
    await service.getPreferences(ID);

    changes.handler!('00000000-0000-4000-8000-000000000000');
    await service.getPreferences(ID);
    expect(repository.findOne).toHaveBeenCalledTimes(1);

    changes.handler!(ID);
    await service.getPreferences(ID);
    expect(repository.findOne).toHaveBeenCalledTimes(2);

    changes.handler!(undefined);
    await service.getPreferences(ID);
    expect(repository.findOne).toHaveBeenCalledTimes(3);
  });

  it('tells the other instances about a PATCH and a DELETE', async () => {
    const { service, repository, changes } = setup(60_000);
    repository.findOne.mockResolvedValue(stored);
    repository.findOneBy.mockResolvedValue(stored);
    repository.update.mockResolvedValue({ affected: 1 });
    repository.delete.mockResolvedValue({ affected: 1 });

    await service.update(ID, { llmFallbackModel: null });
    await service.remove(ID);

    expect(changes.publish.mock.calls).toEqual([[ID], [ID]]);
  });

  it('reads again after the TTL', async () => {
    const { service, repository } = setup(0);
    repository.findOne.mockResolvedValue(stored);

    await service.getPreferences(ID);
    await service.getPreferences(ID);

    expect(repository.findOne).toHaveBeenCalledTimes(2);
  });

  it('serves expired preferences while the database is unreachable', async () => {
    const { service, repository } = setup(0);
    repository.findOne.mockResolvedValueOnce(stored).mockRejectedValue(connectionRefused);

    await service.getPreferences(ID);

    expect(await service.getPreferences(ID)).toMatchObject({ llmModel: 'gpt-4o' });
  });

  it('answers 503 with Retry-After for an organization it never saw while the database is unreachable', async () => {
    const { service, repository } = setup(60_000);
    repository.findOne.mockRejectedValue(connectionRefused);

    const error = await service.getPreferences(ID).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ code: 'DATABASE_UNAVAILABLE', status: 503, headers: { 'retry-after': '5' } });
  });

  it('does not hide other database errors behind the cache', async () => {
    const { service, repository } = setup(0);
    repository.findOne.mockResolvedValueOnce(stored).mockRejectedValue(new Error('column "llm_model" does not exist'));

    await service.getPreferences(ID);

    await expect(service.getPreferences(ID)).rejects.toThrow('column "llm_model" does not exist');
  });

  it('forgets an organization on update and on delete', async () => {
    const { service, repository } = setup(60_000);
    repository.findOne.mockResolvedValue(stored);
    repository.findOneBy.mockResolvedValue(stored);
    repository.delete.mockResolvedValue({ affected: 1 });

    await service.getPreferences(ID);
    await service.update(ID, { name: 'Renamed' });
    await service.getPreferences(ID);
    await service.remove(ID);
    repository.findOne.mockResolvedValue(null);

    await expect(service.getPreferences(ID)).rejects.toMatchObject({ code: 'ORGANIZATION_NOT_FOUND' });
    expect(repository.findOne).toHaveBeenCalledTimes(3);
  });
});
