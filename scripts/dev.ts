import { existsSync } from 'node:fs';
import { assertPortFree, DevStack, providerKeysIn, startDevStack } from './dev-stack';

/**
 * `npm run dev`: the fake provider, the real LiteLLM in front of it and the gateway (embedded database, auth off
 * unless keys are configured), for a try-out with no provider keys. With OPENAI_API_KEY or ANTHROPIC_API_KEY set,
 * LiteLLM gets the shipped litellm-config.yaml and the real providers instead. Ctrl-C stops everything.
 */

// As main.ts does: variables already set win over the file. Provider keys there count too.
if (existsSync('.env')) process.loadEnvFile('.env');

const gatewayPort = Number(process.env.PORT ?? 3000);
const litellmPort = Number(process.env.LITELLM_PORT ?? 4000);
const colours: Record<string, string> = { gateway: '\x1b[36m', litellm: '\x1b[35m' };

function printLine(name: string, line: string): void {
  const prefix = process.stdout.isTTY ? `${colours[name] ?? ''}${name.padEnd(7)}\x1b[0m` : name.padEnd(7);
  process.stdout.write(`${prefix} | ${line}\n`);
}

async function main(): Promise<void> {
  await assertPortFree(gatewayPort, 'the gateway, PORT');
  await assertPortFree(litellmPort, 'LiteLLM, LITELLM_PORT');
  const keys = providerKeysIn(process.env);
  console.log(
    keys.length > 0
      ? `Found ${keys.join(' and ')}: LiteLLM uses litellm-config.yaml and the real providers (models without a key fail).`
      : 'No provider keys: LiteLLM uses litellm.dev-config.yaml and the fake provider (deterministic answers).',
  );
  console.log(`Starting LiteLLM on :${litellmPort} (a few seconds), then the gateway on :${gatewayPort}...`);

  let stack: DevStack | undefined;
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await stack?.stop();
    process.exit(code);
  };
  // Ctrl-C reaches the children too (same process group); this waits for them and stops the fake provider.
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  // The gateway runs where `npm run dev` was started: its .env and ./.data are there.
  stack = await startDevStack({ gatewayPort, litellmPort, gatewayCwd: process.cwd(), onLine: printLine });
  for (const service of [stack.gateway, stack.litellm]) {
    void service.exited.then((code) => {
      if (stopping) return;
      console.error(`${service.name} exited (code ${code}); stopping the rest.`);
      void stopAll(1);
    });
  }
  const url = stack.gateway.url;
  const keysSet = [process.env.GATEWAY_API_KEYS, process.env.GATEWAY_ADMIN_API_KEYS].some((keys) => (keys ?? '').trim() !== '');
  const authorization = keysSet ? ` -H "Authorization: Bearer $KEY"` : '';
  console.log(`
  Gateway:    ${url}   (embedded database in ./.data unless DATABASE_URL is set)
  Swagger UI: ${url}/docs
  LiteLLM:    ${stack.litellm.url}${stack.fakeProvider ? `   → fake provider at ${stack.fakeProvider.url}` : ''}

  Authentication: ${keysSet ? 'on (keys from GATEWAY_API_KEYS / GATEWAY_ADMIN_API_KEYS; "Authorize" in Swagger UI)' : 'off (no keys configured)'}

  Try:
    curl -s ${url}/v1/chat -H 'content-type: application/json'${authorization} \\
      -d '{"messages":[{"role":"user","content":"Say hi"}],"maxTokens":100}'

  Ctrl-C stops everything.
`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
