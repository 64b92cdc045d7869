const { RedisLimitsStore } = require('./dist/src/limits/redis-limits.store');
const { MetricsService } = require('./dist/src/metrics/metrics.service');
(async () => {
  const store = new RedisLimitsStore(new MetricsService(), { url: 'redis://127.0.0.1:6379/13', leaseMs: 60000, keyPrefix: 'micro:' });
  await store.onModuleInit();
  const limits = { requestsPerMinute: 1e9, tokensPerMinute: 1e12, concurrentRequests: 10000, tokenBudget: 1e15, budgetPeriod: 'month' };
  const req = { organization: { id: 'org1', limits, loadPeriodUsage: async () => 0 }, callerKey: undefined, estimatedTokens: 300 };
  const xs = [], fs = [];
  for (let i = 0; i < 6000; i++) {
    const t = process.hrtime.bigint();
    const a = await store.admit(req);
    const t2 = process.hrtime.bigint();
    await store.finish(a.reservation, 250);
    const t3 = process.hrtime.bigint();
    if (i >= 1000) { xs.push(Number(t2 - t) / 1e3); fs.push(Number(t3 - t2) / 1e3); }
  }
  const p = (a, q) => a.sort((x, y) => x - y)[Math.floor(a.length * q)].toFixed(0);
  console.log('admit p50', p(xs, 0.5), 'p90', p(xs, 0.9), '| finish p50', p(fs, 0.5));
  const c = process.cpuUsage(); const t0 = Date.now();
  for (let i = 0; i < 3000; i++) { const a = await store.admit(req); await store.finish(a.reservation, 250); }
  const u = process.cpuUsage(c); console.log('cpu per admit+finish', ((u.user + u.system) / 3000).toFixed(0), 'µs; wall', ((Date.now() - t0) * 1000 / 3000).toFixed(0));
  await store.onApplicationShutdown();
})();
