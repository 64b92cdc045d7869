import { FakeUpstream } from './support/fake-upstream';
import { postJson, readJson, startGateway, temporaryDataDir } from './support/gateway';

/** `npm start` with no DATABASE_URL: an embedded PostgreSQL in DATA_DIR, migrated at boot, kept across restarts. */
describe('embedded database (no DATABASE_URL)', () => {
  const upstream = new FakeUpstream();
  const dataDir = temporaryDataDir();

  beforeAll(() => upstream.start());
  afterAll(() => upstream.stop());

  it('migrates at boot, serves the organization routes and the usage ledger, and keeps the data across a restart', async () => {
    const env = { DATABASE_URL: undefined, DATA_DIR: dataDir, LITELLM_URL: upstream.url, LITELLM_API_KEY: 'sk-test' };

    const first = await startGateway(env);
    let id: string;
    try {
      const created = await postJson(`${first.url}/v1/organizations`, { name: 'Embedded Inc', llmFallbackModel: null });
      expect(created.status).toBe(201);
      id = (await readJson(created)).id;
      const chat = await postJson(`${first.url}/v1/organizations/${id}/chat`, { messages: [{ role: 'user', content: 'hi' }] });
      expect(chat.status).toBe(200);
    } finally {
      await first.close();
    }

    const second = await startGateway(env);
    try {
      const response = await fetch(`${second.url}/v1/organizations/${id}`);
      expect(response.status).toBe(200);
      expect(await readJson(response)).toMatchObject({ name: 'Embedded Inc', llmModel: 'gpt-4o', llmFallbackModel: null });
      // The chat's usage record was written at the first instance's shutdown, into the embedded database.
      const usage = await readJson(await fetch(`${second.url}/v1/organizations/${id}/usage`));
      expect(usage.totals).toMatchObject({ requests: 1, promptTokens: 1, completionTokens: 2, totalTokens: 3, errors: 0 });
    } finally {
      await second.close();
    }
  });
});
