import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

/**
 * The PostgreSQL server the suites use: an admin connection from which each suite creates, and later
 * drops, a database of its own. CI sets TEST_DATABASE_URL; the default is this machine's local server.
 */
export const TEST_DATABASE_ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  name: string;
  url: string;
  /** The same database reached through another host:port (a TcpProxy in front of the server). */
  urlVia(port: number): string;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

async function withAdmin<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: TEST_DATABASE_ADMIN_URL });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(
      `Cannot reach the test PostgreSQL server at ${TEST_DATABASE_ADMIN_URL} (${String(error)}). ` +
        'Start it, or point TEST_DATABASE_URL at one where this user may create databases.',
    );
  }
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `llm_gateway_test_${randomBytes(6).toString('hex')}`;
  await withAdmin((client) => client.query(`CREATE DATABASE "${name}"`));
  const admin = new URL(TEST_DATABASE_ADMIN_URL);
  const url = new URL(admin.href);
  url.pathname = `/${name}`;
  const client = new Client({ connectionString: url.href });
  await client.connect();
  return {
    name,
    url: url.href,
    urlVia(port: number) {
      const proxied = new URL(url.href);
      proxied.hostname = '127.0.0.1';
      proxied.port = String(port);
      return proxied.href;
    },
    async query<T>(sql: string, params?: unknown[]) {
      return (await client.query(sql, params)).rows as T[];
    },
    async drop() {
      await client.end();
      await withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
    },
  };
}

/** Host and port of the test server, for a proxy in front of it. */
export function testDatabaseAddress(): { host: string; port: number } {
  const url = new URL(TEST_DATABASE_ADMIN_URL);
  return { host: url.hostname, port: Number(url.port || 5432) };
}
