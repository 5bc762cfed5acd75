// The Redis side of the state store: Lua run by EVALSHA, so a batch is atomic and one round trip.
// `batchScript` runs the same arithmetic as counter-math.ts (the memory store's): change one,
// change the other.

/**
 * Runs batches of {@link StateOp}s one after the other, each as if alone. `KEYS[i]` is the
 * counter of operation i; `ARGV[1]` the time (ms since the epoch, from the gateway's clock so
 * that tests can move it); `ARGV[2]` how many operations, first in the call, were deferred
 * (write-only; nobody reads their results); `ARGV[3]` five comma-separated fields per operation,
 * all in one argument (each argument costs the client more than the script's split): kind (`r`
 * rate, `b` budget, `s` slots), mode, and three parameters (rate: limit, window ms, cost;
 * budget: limit, period end ms, cost; slots: max, ttl ms, holder); `ARGV[4]` the number of
 * operations of each batch after the deferred ones, comma-separated (empty: none). Returns five
 * integers per operation after the deferred ones: allowed (1/0), used, remaining, reset ms,
 * retry-after ms.
 *
 * In a batch, writes that are not gated (`add`, `release`, `renew`) apply in order; a gate's
 * write (`take`, `acquire`) applies only when every gate of the batch passed. A deferred
 * operation writes what it would write in a batch and only that, with the fewest commands.
 *
 * @see StateOp
 */
export const batchScript = `
local now = tonumber(ARGV[1])
local deferred = tonumber(ARGV[2])
local eps = 1e-6
local grace = 3600000
-- The batch being run: whether its gates all passed, its results either way, its gates' writes,
-- the slots its acquires take per key.
local pass, written, unwritten, gated, acquiring

local function round6(x) return tonumber(string.format("%.6f", x)) end
local function append(list, ok, used, remaining, reset, retry)
  list[#list + 1] = ok and 1 or 0
  list[#list + 1] = used
  list[#list + 1] = remaining
  list[#list + 1] = reset
  list[#list + 1] = retry
end
local function both(ok, used, remaining, reset, retry)
  append(written, ok, used, remaining, reset, retry)
  append(unwritten, ok, used, remaining, reset, retry)
end
-- A rate's figures at level l: used, remaining, reset ms.
local function figures(l, limit, per)
  return math.max(0, math.ceil(l - eps)), math.max(0, math.floor(limit - l + eps)),
    math.max(0, math.ceil(l * per - eps))
end
local function store_rate(key, level, at, window, limit)
  redis.call("SET", key, string.format("%.6f:%.0f", level, at),
    "PX", math.ceil(level * window / limit) + 1000)
end

local function rate(key, mode, limit, window, cost, quiet)
  local level, at = 0, now
  local stored = redis.call("GET", key)
  if stored then
    local sep = string.find(stored, ":", 1, true)
    level = tonumber(string.sub(stored, 1, sep - 1))
    at = tonumber(string.sub(stored, sep + 1))
    local elapsed = now - at
    if elapsed > 0 then
      level = math.max(0, level - elapsed * limit / window)
      at = now
    end
  end
  local per = window / limit
  if mode == "check" then
    local wanted = math.max(1, cost)
    local ok = limit - level >= wanted - eps
    local retry = 0
    if not ok then
      pass = false
      retry = math.max(1, math.ceil((level + wanted - limit) * per - eps))
    end
    local u, r, z = figures(level, limit, per)
    both(ok, u, r, z, retry)
    return
  end
  local nl = math.max(0, round6(level + cost))
  if mode == "add" then
    store_rate(key, nl, at, window, limit)
    if quiet then return end
    local u, r, z = figures(nl, limit, per)
    both(true, u, r, z, 0)
    return
  end
  local ok = nl <= limit + eps
  local retry = 0
  if not ok then
    pass = false
    retry = math.max(1, math.ceil((nl - limit) * per - eps))
  end
  gated[#gated + 1] = { "r", key, nl, at, window, limit }
  local nu, nr, nz = figures(nl, limit, per)
  local bu, br, bz = figures(level, limit, per)
  append(written, ok, nu, nr, nz, retry)
  append(unwritten, ok, bu, br, bz, retry)
end

local function budget(key, mode, limit, period_end, cost, quiet)
  if quiet then
    if cost > 0 then
      redis.call("INCRBY", key, cost)
      redis.call("PEXPIREAT", key, period_end + grace)
    end
    return
  end
  local used = tonumber(redis.call("GET", key) or "0")
  local after = used
  if mode == "add" then
    after = used + cost
    if cost > 0 then
      redis.call("INCRBY", key, cost)
      redis.call("PEXPIREAT", key, period_end + grace)
    end
  end
  local ok = mode == "add" or limit == 0 or used + math.max(1, cost) <= limit
  if not ok then pass = false end
  local reset = math.max(0, period_end - now)
  local remaining = 0
  if limit > 0 then remaining = math.max(0, limit - after) end
  local retry = 0
  if not ok then retry = math.max(1, reset) end
  both(ok, after, remaining, reset, retry)
end

local function slots(key, mode, max, ttl, holder, quiet)
  if quiet and mode == "release" then
    redis.call("ZREM", key, holder)
    return
  end
  redis.call("ZREMRANGEBYSCORE", key, "-inf", now)
  if mode == "renew" and quiet then
    redis.call("ZADD", key, "XX", now + ttl, holder)
    redis.call("PEXPIRE", key, ttl)
    return
  end
  local held = redis.call("ZCARD", key)
  if mode == "acquire" then
    held = held + (acquiring[key] or 0)
    local ok = held < max
    if ok then acquiring[key] = (acquiring[key] or 0) + 1 end
    local retry = 0
    if not ok then
      pass = false
      retry = 1000
    end
    gated[#gated + 1] = { "s", key, now + ttl, holder, ttl }
    local taken = held
    if ok then taken = held + 1 end
    append(written, ok, taken, math.max(0, max - taken), 0, retry)
    append(unwritten, ok, held, math.max(0, max - held), 0, retry)
    return
  end
  if mode == "release" then
    redis.call("ZREM", key, holder)
  else
    redis.call("ZADD", key, "XX", now + ttl, holder)
    redis.call("PEXPIRE", key, ttl)
  end
  held = redis.call("ZCARD", key)
  both(true, held, math.max(0, max - held), 0, 0)
end

local fields = {}
for field in string.gmatch(ARGV[3], "[^,]+") do fields[#fields + 1] = field end
local function op(i, quiet)
  local a = (i - 1) * 5 + 1
  local kind, mode = fields[a], fields[a + 1]
  local p1, p2, p3 = tonumber(fields[a + 2]), tonumber(fields[a + 3]), fields[a + 4]
  if kind == "r" then
    rate(KEYS[i], mode, p1, p2, tonumber(p3), quiet)
  elseif kind == "b" then
    budget(KEYS[i], mode, p1, p2, tonumber(p3), quiet)
  else
    slots(KEYS[i], mode, p1, p2, p3, quiet)
  end
end

for i = 1, deferred do op(i, true) end
local out, i = {}, deferred
for size in string.gmatch(ARGV[4], "[^,]+") do
  pass = true
  written, unwritten, gated, acquiring = {}, {}, {}, {}
  for _ = 1, tonumber(size) do
    i = i + 1
    op(i, false)
  end
  local results = unwritten
  if pass then
    results = written
    for _, g in ipairs(gated) do
      if g[1] == "r" then
        store_rate(g[2], g[3], g[4], g[5], g[6])
      else
        redis.call("ZADD", g[2], g[3], g[4])
        redis.call("PEXPIRE", g[2], g[5])
      end
    end
  end
  for _, v in ipairs(results) do out[#out + 1] = v end
end
return out
`;

/** Takes or extends a lease: `KEYS[1]` the lease, `ARGV[1]` the holder, `ARGV[2]` ttl ms. */
export const leaseScript = `
local current = redis.call("GET", KEYS[1])
if current == false or current == ARGV[1] then
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
  return 1
end
return 0
`;

/** Gives a lease back if `ARGV[1]` holds it. */
export const releaseScript = `
if redis.call("GET", KEYS[1]) == ARGV[1] then redis.call("DEL", KEYS[1]) end
return 0
`;
