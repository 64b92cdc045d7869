import type { IncomingHttpHeaders } from 'node:http';
import { Agent, Dispatcher, request } from 'undici';

type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/**
 * A request's headers as the plain object undici takes, names in lower case. A plain object whose names are
 * already lower case (what GatedOpenAI hands over) is taken as it is: iterating web Headers is not cheap.
 */
export function plainHeaders(given: RequestInit['headers']): Record<string, string> {
  if (!given) return {};
  if (Object.getPrototypeOf(given) === Object.prototype && Object.keys(given).every((name) => name === name.toLowerCase())) {
    return given as Record<string, string>;
  }
  const headers: Record<string, string> = {};
  (given instanceof Headers ? given : new Headers(given)).forEach((value, name) => {
    headers[name] = value;
  });
  return headers;
}

/**
 * The read side of fetch's Headers over the header object undici already parsed (names in lower case). The
 * object is a private field: the SDK's debug logging copies a non-Headers object's own properties, and it
 * must not find every header there, unredacted.
 */
export class UpstreamHeaders {
  readonly #raw: IncomingHttpHeaders;

  constructor(raw: IncomingHttpHeaders) {
    this.#raw = raw;
  }

  get(name: string): string | null {
    const value = this.#raw[name.toLowerCase()];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(', ') : value;
  }

  has(name: string): boolean {
    return this.#raw[name.toLowerCase()] !== undefined;
  }

  *entries(): IterableIterator<[string, string]> {
    for (const name of Object.keys(this.#raw).sort()) {
      const value = this.get(name);
      if (value !== null) yield [name, value];
    }
  }

  forEach(callback: (value: string, name: string, headers: UpstreamHeaders) => void): void {
    for (const [name, value] of this.entries()) callback(value, name, this);
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}

/**
 * What the openai SDK reads of a fetch Response: status, ok, url, headers, body (any async iterable of
 * bytes: the SDK reads event streams from it and cancels it through its iterator), text() and json().
 */
export class UpstreamResponse {
  readonly ok: boolean;
  readonly statusText = '';
  readonly redirected = false;
  readonly type = 'basic';
  readonly headers: UpstreamHeaders;
  /** performance.now() when the status and headers arrived: the attempt's time to first byte. */
  readonly receivedAt = performance.now();

  constructor(
    readonly url: string,
    readonly status: number,
    headers: IncomingHttpHeaders,
    readonly body: Dispatcher.ResponseData['body'],
  ) {
    this.ok = status >= 200 && status < 300;
    this.headers = new UpstreamHeaders(headers);
  }

  get bodyUsed(): boolean {
    return this.body.bodyUsed;
  }

  text(): Promise<string> {
    return this.body.text();
  }

  json(): Promise<unknown> {
    return this.body.json();
  }

  arrayBuffer(): Promise<ArrayBuffer> {
    return this.body.arrayBuffer();
  }
}

/**
 * The transport under the openai SDK: a fetch-compatible function on undici's request API and a
 * keep-alive connection pool to LiteLLM. It answers with an UpstreamResponse, not a WHATWG Response:
 * measured on this project's machine (bench/), Node 20's fetch spends most of its time building web
 * streams and Headers, and the SDK served about 2.6x as many calls per second over undici's request API
 * with a Response around its body, and 1.65x more again without the Response (a bare node:http hop
 * calling the SDK at 32 connections: 2,533 → 4,182 calls/s). Bodies, event streams included, are passed on as undici reads them.
 */
export function createUpstreamFetch(agent: Dispatcher = new Agent()): FetchLike {
  return async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const { statusCode, headers, body } = await request(url, {
      method: (init?.method ?? 'GET') as Dispatcher.HttpMethod,
      headers: plainHeaders(init?.headers),
      body: init?.body as string | Buffer | null | undefined,
      signal: init?.signal ?? undefined,
      dispatcher: agent,
    });
    return new UpstreamResponse(url, statusCode, headers, body) as unknown as Response;
  };
}
