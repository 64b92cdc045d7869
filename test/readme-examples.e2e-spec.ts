import { ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../scripts/dev-stack';
import { freePort } from './support/litellm';

/**
 * `npm run dev` (its script, compiled as `npm run dev` does, with the gateway's build from `npm test`), and every
 * curl example in the README (its ```bash blocks) run in order against it: the fake provider, the real LiteLLM,
 * the gateway with its embedded database and authentication off. Each answer is checked against what the README
 * shows in its `# ...` lines, so the README cannot drift. Then Ctrl-C, which must stop everything.
 *
 * The README's conventions, which this suite reads:
 * - The gateway is `localhost:3000`; `$ORG` is the organization the README creates (the first id it shows),
 *   `$KEY` and `$ADMIN_KEY` are keys (authentication is off, as with `npm run dev`, so any value passes).
 * - An answer is a comment line, after the command or on its last line, that starts with `{`, `[`, `data:`,
 *   `event:`, a status (`201 {...}`, `204`), or, for `curl -i`, a header (`x-llm-model: gpt-4o`). A comment
 *   line that starts with `#  ` (two spaces) continues the answer above it. Any other comment is prose.
 * - In an answer, `...` stands for what varies: `"..."` any string, `"abc..."` a string starting with `abc`,
 *   `{...}` any object, `[...]` any array, a `...` member or element: more of them may follow. Everything
 *   else must be equal (the fake provider is deterministic), and an object without `...` has exactly those fields.
 * - Every call answers 2xx unless the README shows another status.
 * - The ```js and ```python blocks (the OpenAI SDKs) run as they are, against `llm-gateway:3000` (a sibling service's
 *   name for the gateway) with GATEWAY_KEY set; each `// → text` or `# → text` comment is a line they must print.
 */

const README = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
const README_ADDRESS = 'localhost:3000';
const SERVICE_ADDRESS = 'llm-gateway:3000';
/** The Python of the LiteLLM virtualenv, which has the openai package (as in openai-compat.e2e-spec.ts). */
const PYTHON = join(PROJECT_ROOT, '.tools', 'litellm-venv', 'bin', 'python');
const USAGE_FLUSH_INTERVAL_MS = 100;

interface Example {
  section: string;
  command: string;
  /** The README's answer lines, continuation lines joined. */
  expected: string[];
}

/** The ```bash blocks that call curl, each with the heading it sits under. */
function curlBlocks(markdown: string): Array<{ section: string; lines: string[] }> {
  const blocks: Array<{ section: string; lines: string[] }> = [];
  let section = '';
  let block: string[] | undefined;
  for (const line of markdown.split('\n')) {
    if (block === undefined) {
      if (/^#{2,4} /.test(line)) section = line.replace(/^#+ /, '');
      if (line.trim() === '```bash') block = [];
    } else if (line.trim() === '```') {
      if (block.some((text) => /^\s*curl /.test(text))) blocks.push({ section, lines: block });
      block = undefined;
    } else {
      block.push(line);
    }
  }
  return blocks;
}

/** Where a shell comment starts on a line, outside quotes; and whether a single quote is left open. */
function scanLine(line: string, openQuote: string | undefined): { comment: number; openQuote: string | undefined } {
  let quote = openQuote;
  for (let index = 0; index < line.length; index += 1) {
    const char = line[index];
    if (quote) {
      if (char === quote) quote = undefined;
      else if (char === '\\' && quote === '"') index += 1;
    } else if (char === "'" || char === '"') {
      quote = char;
    } else if (char === '\\') {
      index += 1;
    } else if (char === '#' && (index === 0 || /\s/.test(line[index - 1]))) {
      return { comment: index, openQuote: undefined };
    }
  }
  return { comment: -1, openQuote: quote };
}

function isAnswer(text: string, headersShown: boolean): boolean {
  return /^(\{|\[|data:|event:|\d{3}\b)/.test(text) || (headersShown && /^(HTTP\/|[a-z][a-z0-9-]*: )/i.test(text));
}

function examplesOf(section: string, lines: string[]): Example[] {
  const examples: Example[] = [];
  let command: string[] = [];
  let quote: string | undefined;
  let continued = false;
  const last = () => examples[examples.length - 1];
  const addAnswer = (comment: string) => {
    const example = last();
    if (!example) return;
    const text = comment.replace(/^#/, '');
    if (text.startsWith('  ') && example.expected.length > 0) {
      example.expected[example.expected.length - 1] += text.trim();
    } else if (isAnswer(text.trim(), /\bcurl -\w*i/.test(example.command))) {
      example.expected.push(text.trim());
    }
  };
  for (const line of lines) {
    const inCommand = command.length > 0;
    if (!inCommand && line.trim().startsWith('#')) {
      addAnswer(line.trim());
      continue;
    }
    if (!inCommand && line.trim() === '') continue;
    const scan = scanLine(line, quote);
    quote = scan.openQuote;
    const code = scan.comment === -1 ? line : line.slice(0, scan.comment);
    command.push(code.replace(/\s+$/, ''));
    continued = quote !== undefined || /\\$/.test(code.trimEnd());
    if (!continued) {
      examples.push({ section, command: command.join('\n'), expected: [] });
      command = [];
      if (scan.comment !== -1) addAnswer(line.slice(scan.comment).trim());
    }
  }
  return examples;
}

// The README's `...` notation, read as a pattern over JSON values.
type Pattern =
  | { kind: 'any' }
  | { kind: 'literal'; value: unknown }
  | { kind: 'prefix'; value: string }
  | { kind: 'object'; members: Array<[string, Pattern]>; open: boolean }
  | { kind: 'array'; items: Pattern[]; open: boolean };

function parsePattern(text: string): Pattern {
  let position = 0;
  const skip = () => {
    while (/\s/.test(text[position] ?? '')) position += 1;
  };
  const ellipsis = () => {
    skip();
    if (text.startsWith('...', position)) {
      position += 3;
      return true;
    }
    return false;
  };
  const expect = (char: string) => {
    skip();
    if (text[position] !== char) throw new Error(`Expected "${char}" at ${position} in ${text}`);
    position += 1;
  };
  const string = (): string => {
    skip();
    const start = position;
    position += 1;
    while (text[position] !== '"') position += text[position] === '\\' ? 2 : 1;
    position += 1;
    return JSON.parse(text.slice(start, position)) as string;
  };
  const value = (): Pattern => {
    skip();
    if (ellipsis()) return { kind: 'any' };
    const char = text[position];
    if (char === '{') {
      position += 1;
      const members: Array<[string, Pattern]> = [];
      let open = false;
      skip();
      if (text[position] === '}') return (position += 1), { kind: 'object', members, open };
      for (;;) {
        if (ellipsis()) open = true;
        else {
          const key = string();
          expect(':');
          members.push([key, value()]);
        }
        skip();
        if (text[position] === ',') position += 1;
        else break;
      }
      expect('}');
      return { kind: 'object', members, open };
    }
    if (char === '[') {
      position += 1;
      const items: Pattern[] = [];
      let open = false;
      skip();
      if (text[position] === ']') return (position += 1), { kind: 'array', items, open };
      for (;;) {
        if (ellipsis()) open = true;
        else items.push(value());
        skip();
        if (text[position] === ',') position += 1;
        else break;
      }
      expect(']');
      return { kind: 'array', items, open };
    }
    if (char === '"') {
      const content = string();
      if (content === '...') return { kind: 'any' };
      return content.endsWith('...') ? { kind: 'prefix', value: content.slice(0, -3) } : { kind: 'literal', value: content };
    }
    const literal = /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(position));
    if (!literal) throw new Error(`Cannot read the README's answer at ${position}: ${text}`);
    position += literal[0].length;
    return { kind: 'literal', value: JSON.parse(literal[0]) };
  };
  const pattern = value();
  skip();
  if (position !== text.length) throw new Error(`Unexpected text after the answer at ${position}: ${text}`);
  return pattern;
}

/** Where the actual value differs from the pattern, as a list of paths; empty when it matches. */
function mismatches(pattern: Pattern, actual: unknown, path = '$'): string[] {
  switch (pattern.kind) {
    case 'any':
      return [];
    case 'literal':
      return JSON.stringify(actual) === JSON.stringify(pattern.value) ? [] : [`${path}: ${JSON.stringify(actual)} is not ${JSON.stringify(pattern.value)}`];
    case 'prefix':
      return typeof actual === 'string' && actual.startsWith(pattern.value) ? [] : [`${path}: ${JSON.stringify(actual)} does not start with "${pattern.value}"`];
    case 'object': {
      if (typeof actual !== 'object' || actual === null || Array.isArray(actual)) return [`${path}: ${JSON.stringify(actual)} is not an object`];
      const record = actual as Record<string, unknown>;
      const problems = pattern.members.flatMap(([key, member]) =>
        key in record ? mismatches(member, record[key], `${path}.${key}`) : [`${path}.${key} is missing`],
      );
      if (!pattern.open) {
        const shown = new Set(pattern.members.map(([key]) => key));
        problems.push(...Object.keys(record).filter((key) => !shown.has(key)).map((key) => `${path}.${key} is in the answer, not in the README`));
      }
      return problems;
    }
    case 'array': {
      if (!Array.isArray(actual)) return [`${path}: ${JSON.stringify(actual)?.slice(0, 80)} is not an array`];
      const lengthOk = pattern.open ? actual.length >= pattern.items.length : actual.length === pattern.items.length;
      const problems = lengthOk ? [] : [`${path}: ${actual.length} items, the README shows ${pattern.items.length}${pattern.open ? ' or more' : ''}`];
      return problems.concat(pattern.items.flatMap((item, index) => mismatches(item, actual[index], `${path}[${index}]`)));
    }
  }
}

interface Answer {
  status: number[];
  stdout: string;
}

function run(command: string, env: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    execFile('bash', ['-c', command], { env: { ...process.env, ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`${command}\nfailed: ${error.message}\n${stderr}`));
      // .curlrc makes curl write each status on stderr; the README's commands stay as they are.
      const status = [...stderr.matchAll(/^README-STATUS (\d{3})$/gm)].map((match) => Number(match[1]));
      resolve({ status, stdout });
    });
  });
}

/** Checks one answer against the README's lines; the problems, if any. */
function compare(example: Example, answer: Answer): string[] {
  const problems: string[] = [];
  const expected = [...example.expected];
  const statusShown = expected.length > 0 && /^\d{3}\b/.test(expected[0]) ? Number(expected[0].slice(0, 3)) : undefined;
  if (statusShown !== undefined) expected[0] = expected[0].slice(3).trim();
  const okStatus = (status: number) => (statusShown !== undefined ? status === statusShown : status >= 200 && status < 300);
  if (answer.status.length === 0 || !answer.status.every(okStatus)) {
    problems.push(`status ${answer.status.join(', ')}; the README shows ${statusShown ?? '2xx'}`);
  }
  let body = answer.stdout;
  const lines = expected.filter(Boolean);
  if (/\bcurl -\w*i/.test(example.command)) {
    const [head, ...rest] = answer.stdout.split(/\r?\n\r?\n/);
    body = rest.join('\n\n');
    const [statusLine, ...headerLines] = head.split(/\r?\n/);
    const headers = headerLines.map((line) => line.toLowerCase());
    for (const line of lines.filter((text) => text.startsWith('HTTP/'))) {
      if (line !== statusLine) problems.push(`status line "${statusLine}", the README shows "${line}"`);
    }
    for (const line of lines.filter((text) => /^[a-z][a-z0-9-]*: /i.test(text))) {
      if (!headers.includes(line.toLowerCase())) problems.push(`header "${line}" is not among:\n  ${headers.join('\n  ')}`);
    }
  }
  const shown = lines.filter((text) => !/^(HTTP\/|[a-z][a-z0-9-]*: )/i.test(text) || /^(data|event):/.test(text));
  if (shown.length === 0) return problems;
  if (/^(data|event):/.test(shown[0])) {
    const received = body.split('\n').filter((line) => line.trim() !== '');
    if (received.length !== shown.length) problems.push(`${received.length} stream lines, the README shows ${shown.length}:\n${body}`);
    shown.forEach((line, index) => {
      const actual = received[index] ?? '';
      const [field, data] = [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()];
      if (!actual.startsWith(`${field}:`)) return void problems.push(`line ${index + 1}: "${actual}", the README shows "${line}"`);
      const value = actual.slice(field.length + 1).trim();
      if (/^[[{]/.test(data) && data !== '[DONE]') problems.push(...mismatches(parsePattern(data), JSON.parse(value), `line ${index + 1}`));
      else if (value !== data) problems.push(`line ${index + 1}: "${actual}", the README shows "${line}"`);
    });
    return problems;
  }
  if (shown.length !== 1) return [...problems, `one JSON answer expected, the README shows ${shown.length}: ${shown.join(' | ')}`];
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return [...problems, `the answer is not JSON: ${body.slice(0, 500)}`];
  }
  return problems.concat(mismatches(parsePattern(shown[0]), parsed));
}

/** The SDK examples: each ```js or ```python block, and the lines it must print. */
function sdkBlocks(markdown: string): Array<{ language: 'js' | 'python'; code: string; prints: string[] }> {
  return [...markdown.matchAll(/^```(js|python)\n([\s\S]*?)^```$/gm)].map(([, language, code]) => ({
    language: language as 'js' | 'python',
    code,
    prints: [...code.matchAll(/(?:\/\/|#) → (.*)$/gm)].map((match) => match[1].trim()),
  }));
}

function runSdkBlock(language: 'js' | 'python', code: string, env: Record<string, string>): Promise<string> {
  const [command, args] = language === 'js' ? [process.execPath, ['--input-type=module', '-e', code]] : [PYTHON, ['-c', code]];
  return new Promise((resolve, reject) => {
    // From the project's folder, where `import 'openai'` finds the gateway's own dependency.
    execFile(command, args, { cwd: PROJECT_ROOT, env: { ...process.env, ...env }, timeout: 30_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`${language} example failed: ${error.message}\n${stderr}`)) : resolve(stdout),
    );
  });
}

const SDK_EXAMPLES = sdkBlocks(README);
const EXAMPLES = curlBlocks(README).flatMap((block) => examplesOf(block.section, block.lines));
/** The organization the README creates: the first id its examples show. */
const README_ORGANIZATION = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/.exec(EXAMPLES.map((example) => example.command).join('\n'))?.[0];

/** Resolves once nothing accepts connections on the port. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(true));
  });
}

describe('npm run dev and the README examples', () => {
  let dev: ChildProcess;
  let output = '';
  let exited: Promise<number | null>;
  let env: Record<string, string>;
  let address: string;
  let gatewayPort: number;
  let litellmPort: number;

  beforeAll(async () => {
    await promisify(execFile)(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(PROJECT_ROOT, 'scripts', 'dev.tsconfig.json')]);
    // Run from a folder of its own: no developer's .env, and ./.data there. Only PATH and HOME from this
    // environment: no provider keys (which would mean the real providers) and no caller keys.
    const workDir = mkdtempSync(join(tmpdir(), 'llm-gateway-readme-'));
    writeFileSync(join(workDir, '.curlrc'), 'write-out = "%{stderr}README-STATUS %{http_code}\\n"\n');
    [gatewayPort, litellmPort] = [await freePort(), await freePort()];
    // Its own process group, as in a terminal, so that Ctrl-C (SIGINT to the group) reaches every process.
    dev = spawn(process.execPath, [join(PROJECT_ROOT, 'dist', 'dev', 'scripts', 'dev.js')], {
      cwd: workDir,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        PORT: String(gatewayPort),
        LITELLM_PORT: String(litellmPort),
        LOG_LEVEL: 'warn',
        USAGE_FLUSH_INTERVAL_MS: String(USAGE_FLUSH_INTERVAL_MS),
      },
    });
    exited = new Promise((resolve) => dev.once('exit', (code) => resolve(code)));
    dev.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    dev.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 150_000;
    while (!output.includes('Ctrl-C stops everything')) {
      if (dev.exitCode !== null || Date.now() > deadline) throw new Error(`npm run dev did not come up:\n${output.slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    address = `localhost:${gatewayPort}`;
    env = { CURL_HOME: workDir, ORG: README_ORGANIZATION ?? '', KEY: 'gw-readme-caller-key', ADMIN_KEY: 'gw-readme-admin-key' };
  }, 180_000);

  afterAll(async () => {
    if (dev && dev.exitCode === null && dev.signalCode === null) {
      process.kill(-dev.pid!, 'SIGKILL');
      await exited;
    }
  });

  it('prints where Swagger UI is and a first call, both working', async () => {
    const swagger = /Swagger UI: +(\S+)/.exec(output)?.[1];
    expect(swagger).toBe(`http://localhost:${gatewayPort}/docs`);
    expect((await fetch(swagger!.replace('localhost', '127.0.0.1'))).status).toBe(200);
    expect(output).toContain('No provider keys: LiteLLM uses litellm.dev-config.yaml');
    const curl = /^ *(curl [^\n]*\\\n[^\n]*)$/m.exec(output)?.[1];
    expect(curl).toBeDefined();
    const answer = await run(curl!, env);
    expect(answer.status).toEqual([200]);
    expect(JSON.parse(answer.stdout)).toMatchObject({ content: 'Echo: Say hi', model: 'gpt-4o', finishReason: 'stop' });
  });

  it('finds the curl examples, each section with answers to check', () => {
    expect(README_ORGANIZATION).toBeDefined();
    const sections = [...new Set(EXAMPLES.map((example) => example.section))];
    expect(sections).toEqual(
      expect.arrayContaining(['`POST /v1/chat`', 'Tools and structured output', '`POST /v1/embeddings`', '`GET /v1/models`', 'Organizations', '`POST /v1/organizations/:id/chat`']),
    );
    for (const section of sections) {
      expect([section, EXAMPLES.some((example) => example.section === section && example.expected.length > 0)]).toEqual([section, true]);
    }
    expect(EXAMPLES.every((example) => example.command.includes(README_ADDRESS))).toBe(true);
  });

  it('every curl example answers what the README shows', async () => {
    const failures: string[] = [];
    for (const example of EXAMPLES) {
      // The README: usage records are visible through the API within USAGE_FLUSH_INTERVAL_MS + 1 s.
      if (/\/usage\b/.test(example.command)) await new Promise((resolve) => setTimeout(resolve, USAGE_FLUSH_INTERVAL_MS + 1_000));
      const answer = await run(example.command.split(README_ADDRESS).join(address), env);
      if (process.env.README_EXAMPLES_PRINT === '1') console.log(`${example.command}\n→ ${answer.status.join(',')} ${answer.stdout.slice(0, 1500)}`);
      let problems: string[];
      try {
        problems = compare(example, answer);
      } catch (error) {
        problems = [error instanceof Error ? error.message : String(error)];
      }
      if (problems.length > 0) failures.push(`[${example.section}] ${example.command}\n  ${problems.join('\n  ')}`);
    }
    expect(failures).toEqual([]);
  }, 120_000);

  it('every OpenAI SDK example prints what the README shows', async () => {
    expect(SDK_EXAMPLES.map((example) => example.language).sort()).toEqual(['js', 'python']);
    for (const example of SDK_EXAMPLES) {
      expect(example.prints.length).toBeGreaterThan(0);
      const stdout = await runSdkBlock(example.language, example.code.split(SERVICE_ADDRESS).join(address), { ...env, GATEWAY_KEY: env.KEY });
      expect([example.language, stdout.trim().split('\n')]).toEqual([example.language, example.prints]);
    }
  }, 60_000);

  it('stops everything on Ctrl-C', async () => {
    process.kill(-dev.pid!, 'SIGINT');
    expect(await exited).toBe(0);
    expect(await refused(gatewayPort)).toBe(true);
    expect(await refused(litellmPort)).toBe(true);
    // Nothing it started is left in its process group.
    expect(() => process.kill(-dev.pid!, 0)).toThrow();
  }, 30_000);
});
