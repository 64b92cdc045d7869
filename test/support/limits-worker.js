// One "gateway replica" for the limits e2e suite: a process of its own with the built RedisLimitsStore
// (dist/, which `npm test` builds first) and its own connection to Redis, sharing no memory with the test or
// the other workers. It answers the test's messages over IPC:
//   { type: 'run', calls: [{ organization, estimatedTokens, now, startAfterMs, finishAfterMs }] }
//     starts every call (after startAfterMs), finishes each admitted one after finishAfterMs with its estimate as
//     the tokens used, or keeps it open when finishAfterMs is null; answers { admitted, code } per call.
//   { type: 'finishOpen' } finishes the calls kept open.
const { join } = require('node:path');
const { setTimeout: sleep } = require('node:timers/promises');

const dist = join(__dirname, '..', '..', 'dist', 'src');
const { RedisLimitsStore } = require(join(dist, 'limits', 'redis-limits.store.js'));
const { MetricsService } = require(join(dist, 'metrics', 'metrics.service.js'));

const store = new RedisLimitsStore(new MetricsService(), {
  url: process.env.REDIS_URL,
  keyPrefix: process.env.KEY_PREFIX,
  leaseMs: 600_000,
});
const open = [];

async function call({ organization, estimatedTokens, now, startAfterMs, finishAfterMs }) {
  await sleep(startAfterMs ?? 0);
  const admission = await store.admit({
    organization: { ...organization, loadPeriodUsage: async () => 0 },
    estimatedTokens,
    now,
  });
  if (!admission.admitted) return { admitted: false, code: admission.refusal.code, estimatedTokens };
  if (finishAfterMs === null) open.push(admission.reservation);
  else await sleep(finishAfterMs).then(() => store.finish(admission.reservation, estimatedTokens));
  return { admitted: true, estimatedTokens };
}

process.on('message', async (message) => {
  if (message.type === 'run') {
    const results = await Promise.all(message.calls.map(call));
    process.send({ type: 'ran', results });
  } else if (message.type === 'finishOpen') {
    await Promise.all(open.splice(0).map((reservation) => store.finish(reservation, reservation.estimatedTokens)));
    process.send({ type: 'finished' });
  } else if (message.type === 'exit') {
    await store.onApplicationShutdown();
    process.exit(0);
  }
});

store.onModuleInit().then(() => process.send({ type: 'ready' }));
