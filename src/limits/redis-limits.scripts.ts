/**
 * The Lua script of RedisLimitsStore. Redis runs a script alone, so each admission's checks and reservations
 * are one atomic step whatever the number of replicas. MemoryLimitsStore does the same, step for step.
 * TTLs are relative (PEXPIRE), so that a `now` set by a test never makes Redis drop a key at once.
 */

/**
 * Each admission or release comes as one argument, its fields joined by commas (RedisLimitsStore builds it; no
 * field contains a comma): Redis builds a Lua table entry per argument, and the client encodes each one, which
 * cost more than the checks themselves.
 */
const SPLIT_FIELDS = `
local function fields(joined)
  local list = {}
  for field in string.gmatch(joined .. ',', '([^,]*),') do list[#list + 1] = field end
  return list
end
`;

/**
 * One batch: the admissions and releases a replica had waiting when it sent it (it keeps one batch in flight
 * at a time, but for a lone release), each on its own and in order. No KEYS: each entry names its keys among its
 * fields, so that the client sends one argument per entry (one more reason the limits take one Redis server, not
 * Redis Cluster). ARGV: one entry per admission or release, its first field its kind ('a' or 'f').
 * Returns one reply per entry: an admission's (see admit) or a release's (1 if it released an open call, else 0).
 *
 * An admission's fields after its kind: now, n, hasCalls, hasBudget,
 *   per window (n of them): key, limit, cost, ttl;
 *   calls: key, limit (-1: not limited), member, leaseUntil, ttl (the least the key must live), renewTtl (what it
 *     is set to when it would live less: more than needed, so that it is renewed once in a while, not on each call);
 *   budget: key, limit, cost, period, ttl, periodUsage ('' if not loaded).
 * Its reply: {-1} when the budget has no state and periodUsage was not given (nothing changed), else
 * {failed, openCalls, budgetUsed, budgetReserved, windowUsed...}: failed has bit i-1 for window i, bit n for
 * the calls, bit n+1 for the budget; 0 means everything was reserved.
 * Only the writes that are needed are made: a window's TTL is set when the window is created, the open calls'
 * TTL when it runs short, and expired calls are removed when there are some. (In Redis, PEXPIRE costs several
 * times a GET: it is rewritten as PEXPIREAT for replication.)
 *
 * A release's fields after its kind: its organization's open calls key, member, estimate, actual, then its
 * tokens window's key and its budget's key ('' where it reserved nothing).
 * Only a call still open is reconciled: removing it is what makes a second release, or one after its lease ran
 * out (the call was charged in full then), do nothing. A window or budget that is gone is not recreated.
 */
export const LIMITS_SCRIPT = `${SPLIT_FIELDS}
local function admit(f)
  local now, n = tonumber(f[2]), tonumber(f[3])
  local hasCalls, hasBudget = f[4] == '1', f[5] == '1'
  local a = 6 + 4 * n
  local callsKey, callsLimit, member, leaseUntil, callsTtl, callsRenewTtl
  if hasCalls then
    callsKey, callsLimit, member, leaseUntil, callsTtl, callsRenewTtl = f[a], tonumber(f[a + 1]), f[a + 2], f[a + 3], f[a + 4], f[a + 5]
    a = a + 6
  end
  local budgetKey, budgetLimit, budgetCost, period, budgetTtl, periodUsage = f[a], tonumber(f[a + 1]), tonumber(f[a + 2]), f[a + 3], f[a + 4], f[a + 5]

  local failed, used, created = 0, {}, {}
  for i = 1, n do
    local w = 2 + 4 * i
    local value = redis.call('GET', f[w])
    created[i] = not value
    used[i] = tonumber(value or '0')
    if used[i] + tonumber(f[w + 2]) > tonumber(f[w + 1]) then failed = failed + 2 ^ (i - 1) end
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
      local w = 2 + 4 * i
      used[i] = redis.call('INCRBY', f[w], f[w + 2])
      if created[i] then redis.call('PEXPIRE', f[w], f[w + 3]) end
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

local function release(f)
  local callsKey, member, estimate, actual, tokensKey, budgetKey = f[2], f[3], tonumber(f[4]), tonumber(f[5]), f[6], f[7]
  if redis.call('ZREM', callsKey, member) == 0 then return 0 end
  if tokensKey ~= '' and redis.call('EXISTS', tokensKey) == 1 then redis.call('INCRBY', tokensKey, actual - estimate) end
  if budgetKey ~= '' and redis.call('EXISTS', budgetKey) == 1 then
    redis.call('HINCRBY', budgetKey, 'reserved', -estimate)
    redis.call('HINCRBY', budgetKey, 'used', actual)
  end
  return 1
end

local replies = {}
for j = 1, #ARGV do
  local f = fields(ARGV[j])
  if f[1] == 'a' then replies[j] = admit(f) else replies[j] = release(f) end
end
return replies
`;
