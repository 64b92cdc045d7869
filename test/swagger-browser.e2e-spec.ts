import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Browser, chromium, Page } from 'playwright-core';
import { createTestDatabase, TestDatabase } from './support/database';
import { FakeUpstream } from './support/fake-upstream';
import { RunningGateway, startGateway } from './support/gateway';
import { PROJECT_ROOT } from './support/litellm';

/**
 * Swagger UI as a newcomer uses it, in a real browser (Debian's chromium, driven by playwright-core): the gateway
 * with authentication on, "Authorize" with a key, "Try it out" on POST /v1/chat with what it prefills, "Execute",
 * and the 200 answer on the page. The fake upstream stands in for LiteLLM; the database is the real PostgreSQL.
 * The screenshot is kept in test-artifacts/swagger.png.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CALLER_KEY = 'gw-swagger-browser-test-key-0123456789';
const ARTIFACTS = join(PROJECT_ROOT, 'test-artifacts');

describe('Swagger UI in a browser', () => {
  let upstream: FakeUpstream;
  let database: TestDatabase;
  let gateway: RunningGateway;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: install it (Debian: apt-get install -y chromium; .ci/run does) or set CHROMIUM_PATH.`);
    }
    upstream = await new FakeUpstream().start();
    database = await createTestDatabase();
    gateway = await startGateway({
      NODE_ENV: 'test',
      DATABASE_URL: database.url,
      LITELLM_URL: upstream.url,
      GATEWAY_API_KEYS: CALLER_KEY,
      SWAGGER_ENABLED: 'true',
    });
    // --no-sandbox: Chromium's sandbox cannot start as root, which is how CI and these machines run tests.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await gateway?.close();
    await upstream?.stop();
    await database?.drop();
    // process.env is shared with the next suite of this worker.
    delete process.env.DATABASE_URL;
    delete process.env.SWAGGER_ENABLED;
  });

  /** Expands POST /v1/chat, presses "Try it out" and "Execute" with the prefilled body; the live response's status. */
  async function executeChat(): Promise<string> {
    const operation = page.locator('#operations-llm-LlmController_chat');
    if (!(await operation.locator('.try-out__btn').isVisible())) await operation.locator('.opblock-summary').click();
    const tryOut = operation.locator('.try-out__btn');
    if ((await tryOut.textContent())?.trim() === 'Try it out') await tryOut.click();
    await operation.locator('button.execute').click();
    const status = operation.locator('.live-responses-table .response .response-col_status').first();
    await status.waitFor({ timeout: 15_000 });
    return (await status.textContent())!.trim();
  }

  it('authorizes with a key, tries POST /v1/chat with its prefilled body, and shows the 200 answer', async () => {
    await page.goto(`${gateway.url}/docs`);
    await page.locator('#operations-llm-LlmController_chat').waitFor({ timeout: 15_000 });

    // The model routes come first.
    expect(await page.locator('.opblock-tag-section h3').first().getAttribute('data-tag')).toBe('llm');

    // Without the key, "Execute" is answered 401 (authentication is on).
    expect(await executeChat()).toBe('401');
    expect(upstream.requestsTo('/chat/completions')).toHaveLength(0);

    await page.locator('.auth-wrapper .authorize').click();
    await page.locator('.modal-ux input').fill(CALLER_KEY);
    await page.locator('.modal-ux .auth-btn-wrapper .authorize').click();
    await page.locator('.modal-ux .auth-btn-wrapper .btn-done').click();

    // The prefilled body is the small plain call: a JSON answer, not an event stream.
    const body = JSON.parse(await page.locator('#operations-llm-LlmController_chat textarea.body-param__text').inputValue());
    expect(body).toMatchObject({ messages: [{ role: 'user', content: 'Say hi' }], stream: false });

    page.locator('#operations-llm-LlmController_chat .live-responses-table').waitFor({ state: 'detached' }).catch(() => undefined);
    expect(await executeChat()).toBe('200');
    const answer = page.locator('#operations-llm-LlmController_chat .live-responses-table .response-col_description pre').first();
    await expect(answer.textContent()).resolves.toContain('"content": "Echo: Say hi"');
    expect(upstream.requestsTo('/chat/completions')).toHaveLength(1);
    expect(upstream.requestsTo('/chat/completions')[0].body).toMatchObject({ messages: [{ role: 'user', content: 'Say hi' }], max_tokens: 100 });

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.locator('#operations-llm-LlmController_chat').screenshot({ path: join(ARTIFACTS, 'swagger.png') });
  }, 60_000);
});
