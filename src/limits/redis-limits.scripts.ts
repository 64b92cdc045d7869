/**
 * The Lua scripts of RedisLimitsStore. Redis runs a script alone, so each admission's checks and reservations
 * are one atomic step whatever the number of replicas. MemoryLimitsStore does the same, step for step.
 * TTLs are relative (PEXPIRE), so that a `now` set by a test never makes Redis drop a key at once.
 */

/**
 * Any number of admissions at once, each checked and reserved on its own, in order (a replica sends those made
 * in the same turn of its event loop together). KEYS: per admission, its keys; ARGV: per admission, its number
 * of keys and of arguments, then its arguments.
 * One admission's keys: the per-minute windows (n of them), then the organization's open calls and its budget,
 *   each when checked.
 * Its arguments: now, n, hasCalls, hasBudget,
 *   per window: limit, cost, ttl;
 *   calls: limit (-1: not limited), member, leaseUntil, ttl (only ever lengthened);
 *   budget: limit, cost, period, ttl, periodUsage ('' if not loaded).
 * Returns one reply per admission: {-1} when the budget has no state and periodUsage was not given (nothing
 * changed), else {failed, openCalls, budgetUsed, budgetReserved, windowUsed...}: failed has bit i-1 for window i,
 * bit n for the calls, bit n+1 for the budget; 0 means everything was reserved.
 */
export const ADMIT_SCRIPT = `
local function admit(keys, argv)
  local now, n = tonumber(argv[1]), tonumber(argv[2])
  local hasCalls, hasBudget = argv[3] == '1', argv[4] == '1'
  local callsKey, budgetKey = keys[n + 1], keys[n + 2]
  local a = 5 + 3 * n
  local callsLimit, member, leaseUntil, callsTtl
  if hasCalls then
    callsLimit, member, leaseUntil, callsTtl = tonumber(argv[a]), argv[a + 1], argv[a + 2], argv[a + 3]
    a = a + 4
  end
  local budgetLimit, budgetCost, period, budgetTtl, periodUsage = tonumber(argv[a]), tonumber(argv[a + 1]), argv[a + 2], argv[a + 3], argv[a + 4]

  local failed, used = 0, {}
  for i = 1, n do
    used[i] = tonumber(redis.call('GET', keys[i]) or '0')
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
    for _, expired in ipairs(redis.call('ZRANGEBYSCORE', callsKey, '-inf', now)) do
      local expiredPeriod, tokens = string.match(expired, '^[^|]*|([^|]*)|(%d+)$')
      if hasBudget and expiredPeriod == period then
        budgetUsed = redis.call('HINCRBY', budgetKey, 'used', tokens)
        budgetReserved = redis.call('HINCRBY', budgetKey, 'reserved', -tokens)
      end
    end
    redis.call('ZREMRANGEBYSCORE', callsKey, '-inf', now)
    open = redis.call('ZCARD', callsKey)
    if callsLimit >= 0 and open + 1 > callsLimit then failed = failed + 2 ^ n end
  end
  if hasBudget and budgetUsed + budgetReserved + budgetCost > budgetLimit then failed = failed + 2 ^ (n + 1) end

  if failed == 0 then
    for i = 1, n do
      used[i] = redis.call('INCRBY', keys[i], argv[3 * i + 3])
      redis.call('PEXPIRE', keys[i], argv[3 * i + 4])
    end
    if hasCalls then
      redis.call('ZADD', callsKey, leaseUntil, member)
      if redis.call('PTTL', callsKey) < tonumber(callsTtl) then redis.call('PEXPIRE', callsKey, callsTtl) end
      open = open + 1
    end
    if hasBudget then budgetReserved = redis.call('HINCRBY', budgetKey, 'reserved', budgetCost) end
  end
  return {failed, open, budgetUsed, budgetReserved, unpack(used)}
end

local replies, k, a = {}, 1, 1
while a <= #ARGV do
  local keyCount, argCount = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local keys, argv = {}, {}
  for i = 1, keyCount do keys[i] = KEYS[k + i - 1] end
  for i = 1, argCount do argv[i] = ARGV[a + 1 + i] end
  k, a = k + keyCount, a + 2 + argCount
  replies[#replies + 1] = admit(keys, argv)
end
return replies
`;

/**
 * Any number of finished calls at once (a replica sends those that ended in the same turn of its event loop
 * together). KEYS: per call, its organization's open calls, then its tokens window and its budget when it
 * reserved there. ARGV: per call, member, estimate, actual, hasTokens, hasBudget.
 * Only a call still open is reconciled: removing it is what makes a second finish, or one after its lease ran
 * out (the call was charged in full then), do nothing. A window or budget that is gone is not recreated.
 * Returns how many calls were released.
 */
export const FINISH_SCRIPT = `
local k, released = 1, 0
for a = 1, #ARGV, 5 do
  local callsKey, tokensKey, budgetKey = KEYS[k], nil, nil
  k = k + 1
  if ARGV[a + 3] == '1' then tokensKey = KEYS[k]; k = k + 1 end
  if ARGV[a + 4] == '1' then budgetKey = KEYS[k]; k = k + 1 end
  if redis.call('ZREM', callsKey, ARGV[a]) == 1 then
    released = released + 1
    local estimate, actual = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    if tokensKey and redis.call('EXISTS', tokensKey) == 1 then redis.call('INCRBY', tokensKey, actual - estimate) end
    if budgetKey and redis.call('EXISTS', budgetKey) == 1 then
      redis.call('HINCRBY', budgetKey, 'reserved', -estimate)
      redis.call('HINCRBY', budgetKey, 'used', actual)
    end
  end
end
return released
`;
