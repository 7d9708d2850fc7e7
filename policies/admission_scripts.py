"""The two atomic scripts of admission, each written twice (Lua for Redis, a Python twin for the
in-process store): ADMIT checks and reserves every rate limit and budget of a request at once,
SETTLE replaces the reservations by what the request really used.

Rate limits are GCRA (generic cell rate algorithm) per scope and dimension. A key
`<scope>:req` or `<scope>:tok` holds the theoretical arrival time (TAT), in microseconds of the
store's clock: the instant at which the scope would be back to a full allowance. A request of
`n` units (1 request, or its estimated tokens) moves the TAT `n * 60 s / limit` later, from
`max(TAT, now)`; it is admitted if the new TAT is at most 60 s ahead of now. So a scope admits a
burst of its full minute's allowance, then one unit per `60 s / limit`: the long-run rate is
exactly the limit, and there is no window boundary at which a second burst fits. The key lives
until its TAT is in the past (then it would read as "full" anyway).

Budgets: a spent counter per period, plus reservations in five-minute buckets (budget_keys.py). A
hard budget admits while spent + live reservations + this reservation <= limit; with clamping,
fewer output tokens are granted if at least `min_clamped` of them fit. Soft budgets always
admit and report when they are over.

Numbers reach Lua as strings and leave it through string.format('%d'): Lua 5.1 would print a
large number as 1.7e+15, which Redis refuses as an integer (or reads wrong).

Result of ADMIT (a list of integers):
  [0, granted_output, reserved_micros, reserved_tokens,
   req_limit, req_remaining, req_reset_us, tok_limit, tok_remaining, tok_reset_us,
   (budget_index, left_micros) for each soft budget over its limit ...]   admitted (-1: no scope)
  [1, limit_index, retry_us, ...the six header numbers]   a requests-per-minute limit refused
  [2, limit_index, retry_us, ...the six header numbers]   a tokens-per-minute limit refused
  [3, limit_index, tokens]                                the estimate alone exceeds a TPM limit
  [4, budget_index, left_micros]                          a hard budget refused
  [5, budget_index, ...]                                  spent counters missing: seed, run again
"""

from infra.state.base import Script

WINDOW_US = 60_000_000  # a limit is per minute; the GCRA tolerance is the full minute
ADMITTED, LIMITED_REQUESTS, LIMITED_TOKENS, TOO_LARGE, OVER_BUDGET, MISSING = range(6)
# Per budget: 0 soft, 1 hard, 2 hard and clamps max_tokens.
SOFT, HARD, HARD_CLAMP = 0, 1, 2
# Seeds: the spent value to set if the counter is missing; these two are not values.
NO_SEED, COUNT_AS_ZERO = -1, -2
HEAD = 10  # ARGV entries before the per-scope ones

_LUA_COMMON = """
local function int(n) return string.format('%d', n) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local a = {}
for v in string.gmatch(ARGV[1], '[^,]+') do a[#a + 1] = tonumber(v) end
"""

ADMIT_LUA = (
    _LUA_COMMON
    + """
-- KEYS: limit keys (nl); per budget: spent key, then nk bucket keys (the last is the current one)
-- ARGV[1], comma-separated numbers (a: one argument to encode, not dozens):
--   tokens, output_tokens, output_price, prompt_micros, seeded, nl, nb, nk, min_clamped,
--   bucket_ttl_s; per limit: dim (1 requests, 2 tokens), per-minute limit; per budget:
--   limit_micros, mode; if seeded: counter_ttl_s, then one seed per budget
local tokens, out, price, prompt, seeded = a[1], a[2], a[3], a[4], a[5]
local nl, nb, nk, min_clamped, bucket_ttl = a[6], a[7], a[8], a[9], a[10]
local bargs = 10 + 2 * nl
local sargs = bargs + 2 * nb

local function out_cost(n) return math.floor((n * price + 999999) / 1000000) end

-- Budgets: read (and seed) every counter first.
local avail, limit, mode, missing = {}, {}, {}, {}
for i = 1, nb do
  local base = nl + (i - 1) * (nk + 1)
  limit[i] = a[bargs + 2 * i - 1]
  mode[i] = a[bargs + 2 * i]
  local vals = redis.call('MGET', unpack(KEYS, base + 1, base + 1 + nk))
  local spent = vals[1]
  if spent then
    spent = tonumber(spent)
  else
    local seed = -1
    if seeded == 1 then seed = a[sargs + 1 + i] end
    if seed >= 0 then
      redis.call('SET', KEYS[base + 1], int(seed), 'EX', int(a[sargs + 1]), 'NX')
      spent = seed
    elseif seed == -2 then
      spent = 0
    else
      missing[#missing + 1] = i - 1
    end
  end
  if spent then
    local held = 0
    for k = 2, nk + 1 do
      if vals[k] then held = held + tonumber(vals[k]) end
    end
    avail[i] = limit[i] - spent - held
  end
end
if #missing > 0 then return {5, unpack(missing)} end

local granted = out
for i = 1, nb do
  if mode[i] == 2 and prompt + out_cost(out) > avail[i] then
    local g = -1
    if price > 0 then g = math.floor((avail[i] - prompt) * 1000000 / price) end
    if g < min_clamped then return {4, i - 1, math.max(avail[i], 0)} end
    if g < granted then granted = g end
  end
end
local reserve = prompt + out_cost(granted)
for i = 1, nb do
  if mode[i] >= 1 and reserve > avail[i] then return {4, i - 1, math.max(avail[i], 0)} end
end
tokens = tokens - (out - granted)

-- Rate limits: GCRA per key; remember the tightest scope of each dimension for the headers.
local refused, refused_at, retry = 0, 0, 0
local cur, tats = {}, {}
local hdr = {-1, 0, 0, -1, 0, 0}
for j = 1, nl do
  local dim, lim = a[9 + 2 * j], a[10 + 2 * j]
  local n = 1
  if dim == 2 then
    n = tokens
    if n > lim then return {3, j - 1, n} end
  end
  local tat = tonumber(redis.call('GET', KEYS[j]) or 0)
  if tat < now then tat = now end
  cur[j] = tat
  local new = tat + math.floor((n * 60000000 + lim - 1) / lim)
  if new - now > 60000000 then
    if refused == 0 then refused, refused_at, retry = dim, j - 1, new - 60000000 - now end
    new = tat
  end
  tats[j] = new
end
for j = 1, nl do
  local dim, lim = a[9 + 2 * j], a[10 + 2 * j]
  local tat = tats[j]
  if refused ~= 0 then tat = cur[j] end
  local remaining = math.floor((now + 60000000 - tat) * lim / 60000000)
  local h = 3 * dim - 2
  if hdr[h] < 0 or remaining < hdr[h + 1] then
    hdr[h], hdr[h + 1], hdr[h + 2] = lim, remaining, tat - now
  end
end
if refused ~= 0 then
  return {refused, refused_at, retry, hdr[1], hdr[2], hdr[3], hdr[4], hdr[5], hdr[6]}
end

-- Admitted: write everything.
for j = 1, nl do
  if tats[j] > now then
    redis.call('SET', KEYS[j], int(tats[j]), 'PX', int(math.ceil((tats[j] - now) / 1000)))
  end
end
local result = {0, granted, reserve, tokens, hdr[1], hdr[2], hdr[3], hdr[4], hdr[5], hdr[6]}
for i = 1, nb do
  if reserve > 0 then
    local bucket = KEYS[nl + i * (nk + 1)]
    if redis.call('INCRBY', bucket, int(reserve)) == reserve then
      redis.call('EXPIRE', bucket, int(bucket_ttl))
    end
  end
  if mode[i] == 0 and reserve > avail[i] then
    result[#result + 1] = i - 1
    result[#result + 1] = avail[i]
  end
end
return result
"""
)


def _numbers(args) -> list[int]:
    return [int(v) for v in args[0].split(",")]


def _admit_py(view, keys, args):
    args = _numbers(args)
    tokens, out, price, prompt = (int(a) for a in args[:4])
    seeded, nl, nb, nk, min_clamped, bucket_ttl = (int(a) for a in args[4:HEAD])
    bargs = HEAD + 2 * nl
    sargs = bargs + 2 * nb
    now = view.time_us()

    def out_cost(n: int) -> int:
        return (n * price + 999_999) // 1_000_000

    avail, limit, mode, missing = [0] * nb, [0] * nb, [0] * nb, []
    for i in range(nb):
        base = nl + i * (nk + 1)
        limit[i], mode[i] = int(args[bargs + 2 * i]), int(args[bargs + 2 * i + 1])
        raw = view.get(keys[base])
        if raw is not None:
            spent = int(raw)
        else:
            seed = int(args[sargs + 1 + i]) if seeded else NO_SEED
            if seed >= 0:
                view.set(keys[base], str(seed).encode(), int(args[sargs]))
                spent = seed
            elif seed == COUNT_AS_ZERO:
                spent = 0
            else:
                missing.append(i)
                continue
        held = sum(int(v) for k in keys[base + 1 : base + 1 + nk] if (v := view.get(k)))
        avail[i] = limit[i] - spent - held
    if missing:
        return [MISSING, *missing]

    granted = out
    for i in range(nb):
        if mode[i] == HARD_CLAMP and prompt + out_cost(out) > avail[i]:
            g = (avail[i] - prompt) * 1_000_000 // price if price > 0 else -1
            if g < min_clamped:
                return [OVER_BUDGET, i, max(avail[i], 0)]
            granted = min(granted, g)
    reserve = prompt + out_cost(granted)
    for i in range(nb):
        if mode[i] >= HARD and reserve > avail[i]:
            return [OVER_BUDGET, i, max(avail[i], 0)]
    tokens -= out - granted

    refused = refused_at = retry = 0
    cur, tats = [], []
    for j in range(nl):
        dim, lim = int(args[HEAD + 2 * j]), int(args[HEAD + 2 * j + 1])
        n = 1 if dim == 1 else tokens
        if dim == 2 and n > lim:
            return [TOO_LARGE, j, n]
        tat = max(int(view.get(keys[j]) or 0), now)
        cur.append(tat)
        new = tat + (n * WINDOW_US + lim - 1) // lim
        if new - now > WINDOW_US:
            if not refused:
                refused, refused_at, retry = dim, j, new - WINDOW_US - now
            new = tat
        tats.append(new)
    hdr = [-1, 0, 0, -1, 0, 0]
    for j in range(nl):
        dim, lim = int(args[HEAD + 2 * j]), int(args[HEAD + 2 * j + 1])
        tat = cur[j] if refused else tats[j]
        remaining = (now + WINDOW_US - tat) * lim // WINDOW_US
        h = 3 * dim - 3
        if hdr[h] < 0 or remaining < hdr[h + 1]:
            hdr[h : h + 3] = [lim, remaining, tat - now]
    if refused:
        return [refused, refused_at, retry, *hdr]

    for j in range(nl):
        if tats[j] > now:
            view.set(keys[j], str(tats[j]).encode(), -(-(tats[j] - now) // 1000) / 1000)
    result = [ADMITTED, granted, reserve, tokens, *hdr]
    for i in range(nb):
        if reserve > 0:
            bucket = keys[nl + (i + 1) * (nk + 1) - 1]
            if view.incrby(bucket, reserve) == reserve:
                view.expire(bucket, bucket_ttl)
        if mode[i] == SOFT and reserve > avail[i]:
            result += [i, avail[i]]
    return result


ADMIT = Script(name="policies-admit", lua=ADMIT_LUA, py=_admit_py)


SETTLE_LUA = (
    _LUA_COMMON
    + """
-- KEYS: TPM keys (nt); per budget: spent key, the request's own bucket key
-- ARGV[1], comma-separated: nt, nb, token_delta, reserved_micros, cost_micros; per TPM key:
-- its limit
local nt, nb, delta, reserved, cost = a[1], a[2], a[3], a[4], a[5]
if delta ~= 0 then
  for j = 1, nt do
    local lim = a[5 + j]
    local step = math.floor((math.abs(delta) * 60000000 + lim - 1) / lim)
    local tat = math.max(tonumber(redis.call('GET', KEYS[j]) or 0), now)
    if delta > 0 then tat = tat + step else tat = math.max(tat - step, now) end
    if tat > now then
      redis.call('SET', KEYS[j], int(tat), 'PX', int(math.ceil((tat - now) / 1000)))
    else
      redis.call('DEL', KEYS[j])
    end
  end
end
for i = 1, nb do
  local spent, bucket = KEYS[nt + 2 * i - 1], KEYS[nt + 2 * i]
  -- A missing counter is rebuilt from Postgres, which will hold this request: never create it.
  if cost > 0 and redis.call('EXISTS', spent) == 1 then redis.call('INCRBY', spent, int(cost)) end
  -- A lapsed bucket no longer counts this reservation: nothing to take back.
  if reserved > 0 and redis.call('EXISTS', bucket) == 1 then
    if redis.call('DECRBY', bucket, int(reserved)) <= 0 then redis.call('DEL', bucket) end
  end
end
return 1
"""
)


def _settle_py(view, keys, args):
    args = _numbers(args)
    nt, nb, delta, reserved, cost = args[:5]
    now = view.time_us()
    if delta:
        for j in range(nt):
            lim = int(args[5 + j])
            step = (abs(delta) * WINDOW_US + lim - 1) // lim
            tat = max(int(view.get(keys[j]) or 0), now)
            tat = tat + step if delta > 0 else max(tat - step, now)
            if tat > now:
                view.set(keys[j], str(tat).encode(), -(-(tat - now) // 1000) / 1000)
            else:
                view.delete(keys[j])
    for i in range(nb):
        spent, bucket = keys[nt + 2 * i], keys[nt + 2 * i + 1]
        if cost > 0 and view.get(spent) is not None:
            view.incrby(spent, cost)
        if reserved > 0 and view.get(bucket) is not None and view.incrby(bucket, -reserved) <= 0:
            view.delete(bucket)
    return 1


SETTLE = Script(name="policies-settle", lua=SETTLE_LUA, py=_settle_py)
