/**
 * The Lua script of RedisLimitsStore. Redis runs a script alone, so each admission's checks and reservations
 * are one atomic step whatever the number of replicas. MemoryLimitsStore does the same, step for step.
 * TTLs are relative (PEXPIRE), so that a `now` set by a test never makes Redis drop a key at once.
 */

/**
 * Each admission's or release's fields come joined by commas in one argument (RedisLimitsStore builds it):
 * Redis builds a Lua table entry per argument, which cost more than the checks themselves.
 */
const SPLIT_FIELDS = `
local function fields(joined)
  local list = {}
  for field in string.gmatch(joined .. ',', '([^,]*),') do list[#list + 1] = field end
  return list
end
`;

/**
 * One batch: the admissions and releases a replica had waiting when it sent it (it keeps one batch in flight at
 * a time), each on its own and in order. KEYS: per entry, its keys; ARGV: one entry per admission or release,
 * its fields joined by commas, the first two being its kind ('a' or 'f') and its number of keys.
 * Returns one reply per entry: an admission's (see admit) or a release's (1 if it released an open call, else 0).
 *
 * An admission's keys: the per-minute windows (n of them), then the organization's open calls and its budget,
 *   each when checked.
 * Its fields after the first two: now, n, hasCalls, hasBudget,
 *   per window: limit, cost, ttl;
 *   calls: limit (-1: not limited), member, leaseUntil, ttl (the least the key must live), renewTtl (what it is
 *     set to when it would live less: more than needed, so that it is renewed once in a while, not on each call);
 *   budget: limit, cost, period, ttl, periodUsage ('' if not loaded).
 * Its reply: {-1} when the budget has no state and periodUsage was not given (nothing changed), else
 * {failed, openCalls, budgetUsed, budgetReserved, windowUsed...}: failed has bit i-1 for window i, bit n for
 * the calls, bit n+1 for the budget; 0 means everything was reserved.
 * Only the writes that are needed are made: a window's TTL is set when the window is created, the open calls'
 * TTL when it runs short, and expired calls are removed when there are some. (In Redis, PEXPIRE costs several
 * times a GET: it is rewritten as PEXPIREAT for replication.)
 *
 * A release's keys: its organization's open calls, then its tokens window and its budget when it reserved there.
 * Its fields after the first two: member, estimate, actual, hasTokens, hasBudget.
 * Only a call still open is reconciled: removing it is what makes a second release, or one after its lease ran
 * out (the call was charged in full then), do nothing. A window or budget that is gone is not recreated.
 */
export const LIMITS_SCRIPT = `${SPLIT_FIELDS}
local function admit(keys, argv)
  local now, n = tonumber(argv[1]), tonumber(argv[2])
  local hasCalls, hasBudget = argv[3] == '1', argv[4] == '1'
  local callsKey, budgetKey = keys[n + 1], keys[n + 2]
  local a = 5 + 3 * n
  local callsLimit, member, leaseUntil, callsTtl, callsRenewTtl
  if hasCalls then
    callsLimit, member, leaseUntil, callsTtl, callsRenewTtl = tonumber(argv[a]), argv[a + 1], argv[a + 2], argv[a + 3], argv[a + 4]
    a = a + 5
  end
  local budgetLimit, budgetCost, period, budgetTtl, periodUsage = tonumber(argv[a]), tonumber(argv[a + 1]), argv[a + 2], argv[a + 3], argv[a + 4]

  local failed, used, created = 0, {}, {}
  for i = 1, n do
    local value = redis.call('GET', keys[i])
    created[i] = not value
    used[i] = tonumber(value or '0')
    if used[i] + tonumber(argv[3 * i + 3]) > tonumber(argv[3 * i + 2]) then failed = failed + 2 ^ (i - 1) end
  end

  local budgetUsed, budgetReserved = 0, 0
  if hasBudget then
    local state = redis.call('HMGET', budgetKey, 'used', 'reserved')
    if state[1] then
      budgetUsed, budgetReserved = tonumber(state[1]), tonumber(state[2])
    elseif periodUsage == '' then
      return {-1}
    else
      budgetUsed = tonumber(periodUsage)
      redis.call('HSET', budgetKey, 'used', budgetUsed, 'reserved', 0)
      redis.call('PEXPIRE', budgetKey, budgetTtl)
    end
  end

  local open = 0
  if hasCalls then
    -- A call that outlived its lease is charged its whole estimate: it may have run to its end.
    local expiredCalls = redis.call('ZRANGEBYSCORE', callsKey, '-inf', now)
    for _, expired in ipairs(expiredCalls) do
      local expiredPeriod, tokens = string.match(expired, '^[^|]*|([^|]*)|(%d+)$')
      if hasBudget and expiredPeriod == period then
        budgetUsed = redis.call('HINCRBY', budgetKey, 'used', tokens)
        budgetReserved = redis.call('HINCRBY', budgetKey, 'reserved', -tokens)
      end
    end
    if #expiredCalls > 0 then redis.call('ZREMRANGEBYSCORE', callsKey, '-inf', now) end
    open = redis.call('ZCARD', callsKey)
    if callsLimit >= 0 and open + 1 > callsLimit then failed = failed + 2 ^ n end
  end
  if hasBudget and budgetUsed + budgetReserved + budgetCost > budgetLimit then failed = failed + 2 ^ (n + 1) end

  if failed == 0 then
    for i = 1, n do
      used[i] = redis.call('INCRBY', keys[i], argv[3 * i + 3])
      if created[i] then redis.call('PEXPIRE', keys[i], argv[3 * i + 4]) end
    end
    if hasCalls then
      redis.call('ZADD', callsKey, leaseUntil, member)
      if redis.call('PTTL', callsKey) < tonumber(callsTtl) then redis.call('PEXPIRE', callsKey, callsRenewTtl) end
      open = open + 1
    end
    if hasBudget then budgetReserved = redis.call('HINCRBY', budgetKey, 'reserved', budgetCost) end
  end
  return {failed, open, budgetUsed, budgetReserved, unpack(used)}
end

local function release(keys, argv)
  local member, estimate, actual, hasTokens, hasBudget = argv[1], tonumber(argv[2]), tonumber(argv[3]), argv[4] == '1', argv[5] == '1'
  local callsKey, tokensKey, budgetKey = keys[1], nil, nil
  if hasTokens then tokensKey = keys[2] end
  if hasBudget then budgetKey = keys[hasTokens and 3 or 2] end
  if redis.call('ZREM', callsKey, member) == 0 then return 0 end
  if tokensKey and redis.call('EXISTS', tokensKey) == 1 then redis.call('INCRBY', tokensKey, actual - estimate) end
  if budgetKey and redis.call('EXISTS', budgetKey) == 1 then
    redis.call('HINCRBY', budgetKey, 'reserved', -estimate)
    redis.call('HINCRBY', budgetKey, 'used', actual)
  end
  return 1
end

local replies, k = {}, 1
for j = 1, #ARGV do
  local argv = fields(ARGV[j])
  local kind = table.remove(argv, 1)
  local keyCount = tonumber(table.remove(argv, 1))
  local keys = {}
  for i = 1, keyCount do keys[i] = KEYS[k + i - 1] end
  k = k + keyCount
  if kind == 'a' then replies[j] = admit(keys, argv) else replies[j] = release(keys, argv) end
end
return replies
`;
