"""The breaker's two atomic operations on one deployment's shared health state.

One key per deployment holds a small JSON object (Lua's cjson, Python's json): every process
and the health-check worker read and write the same state. Times are the store's clock in
milliseconds (13 digits: cjson keeps 14 significant ones), so all processes share one clock.

Fields (absent means 0 / unknown):
    s   breaker: 0 closed, 1 open (half-open once `u` has passed)
    u   open until (ms)          d   how long it was last opened for (ms)
    c   cooling until (ms): a provider 429 with Retry-After
    f   consecutive failures     ws/wn/wf  error-rate window: start, outcomes, failures
    p   probes in flight (half-open)         pu  their lease ends (ms): a probe whose process
                                                 died stops holding its slot
    l   latency EWMA (ms): time to first token for streams, total time otherwise
"""

import json

from infra.state.base import Script

# Outcome kinds a report carries.
OK = "ok"
FAIL = "fail"
LIMITED = "limited"
RELEASE = "release"  # neither success nor failure (a client's disconnect): frees a probe slot

_LUA_PRELUDE = """
local raw = redis.call('GET', KEYS[1])
local s = {}
if raw then s = cjson.decode(raw) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

REPORT_LUA = (
    _LUA_PRELUDE
    + """
local kind = ARGV[1]
local lat = tonumber(ARGV[2])
local probe = ARGV[4] == '1'
local threshold = tonumber(ARGV[5])
local window = tonumber(ARGV[6])
local min_n = tonumber(ARGV[7])
local rate = tonumber(ARGV[8])
local base = tonumber(ARGV[9])
local max_open = tonumber(ARGV[10])
local alpha = tonumber(ARGV[11])
local check = ARGV[13] == '1'
local open = (s.s or 0) == 1
local half = open and now >= (s.u or 0)
if (s.pu or 0) < now then s.p = 0 end
if probe and (s.p or 0) > 0 then s.p = s.p - 1 end
if now - (s.ws or 0) >= window then s.ws = now; s.wn = 0; s.wf = 0 end
if kind == 'ok' then
  if lat then
    if s.l then s.l = alpha * lat + (1 - alpha) * s.l else s.l = lat end
  end
  s.f = 0
  s.wn = s.wn + 1
  if open and (half or check) then s.s = 0; s.u = 0; s.d = 0; s.p = 0 end
elseif kind == 'fail' then
  s.f = (s.f or 0) + 1
  s.wn = s.wn + 1
  s.wf = s.wf + 1
  if half then
    s.d = math.min(math.max(s.d or base, base) * 2, max_open)
    s.u = now + s.d
    s.p = 0
  elseif (not open) and (s.f >= threshold or (s.wn >= min_n and s.wf * 100 >= rate * s.wn)) then
    s.s = 1; s.d = base; s.u = now + base; s.p = 0
  end
elseif kind == 'limited' then
  s.c = math.max(s.c or 0, now + tonumber(ARGV[3]))
end
local out = cjson.encode(s)
redis.call('SET', KEYS[1], out, 'EX', ARGV[12])
return out
"""
)


def _now_ms(view) -> int:
    return view.time_us() // 1000


def _load(view, key: str) -> dict:
    raw = view.get(key)
    return json.loads(raw) if raw else {}


def _report_py(view, keys, args):
    key = keys[0]
    s = _load(view, key)
    now = _now_ms(view)
    kind = str(args[0])
    lat = float(args[1]) if str(args[1]) != "" else None
    probe = str(args[3]) == "1"
    threshold, window, min_n, rate = (int(a) for a in args[4:8])
    base, max_open = int(args[8]), int(args[9])
    alpha = float(args[10])
    check = str(args[12]) == "1"
    is_open = s.get("s", 0) == 1
    half = is_open and now >= s.get("u", 0)
    if s.get("pu", 0) < now:
        s["p"] = 0
    if probe and s.get("p", 0) > 0:
        s["p"] -= 1
    if now - s.get("ws", 0) >= window:
        s["ws"], s["wn"], s["wf"] = now, 0, 0
    if kind == OK:
        if lat is not None:
            s["l"] = alpha * lat + (1 - alpha) * s["l"] if "l" in s else lat
        s["f"] = 0
        s["wn"] += 1
        if is_open and (half or check):
            s.update(s=0, u=0, d=0, p=0)
    elif kind == FAIL:
        s["f"] = s.get("f", 0) + 1
        s["wn"] += 1
        s["wf"] += 1
        if half:
            s["d"] = min(max(s.get("d", base), base) * 2, max_open)
            s["u"] = now + s["d"]
            s["p"] = 0
        elif not is_open and (
            s["f"] >= threshold or (s["wn"] >= min_n and s["wf"] * 100 >= rate * s["wn"])
        ):
            s.update(s=1, d=base, u=now + base, p=0)
    elif kind == LIMITED:
        s["c"] = max(s.get("c", 0), now + int(args[2]))
    out = json.dumps(s, separators=(",", ":")).encode()
    view.set(key, out, int(args[11]))
    return out


# KEYS: the deployment's key. ARGV: kind, latency ms ('' if none), cooldown ms (LIMITED),
# probe '1'/'0', consecutive failures that open, window ms, minimum outcomes, error rate %,
# open ms, max open ms, EWMA alpha, key TTL s, from the health check '1'/'0'.
# Returns the new state (JSON bytes), so the reporting process updates its cache for free.
REPORT = Script("health_report", REPORT_LUA, _report_py)


PROBE_LUA = (
    _LUA_PRELUDE
    + """
if (s.s or 0) ~= 1 then return 1 end
if now < (s.u or 0) then return 0 end
if (s.pu or 0) < now then s.p = 0 end
if (s.p or 0) >= tonumber(ARGV[1]) then return 0 end
s.p = (s.p or 0) + 1
s.pu = now + tonumber(ARGV[2])
redis.call('SET', KEYS[1], cjson.encode(s), 'EX', ARGV[3])
return 1
"""
)


def _probe_py(view, keys, args):
    s = _load(view, keys[0])
    now = _now_ms(view)
    if s.get("s", 0) != 1:
        return 1
    if now < s.get("u", 0):
        return 0
    if s.get("pu", 0) < now:
        s["p"] = 0
    if s.get("p", 0) >= int(args[0]):
        return 0
    s["p"] = s.get("p", 0) + 1
    s["pu"] = now + int(args[1])
    view.set(keys[0], json.dumps(s, separators=(",", ":")).encode(), int(args[2]))
    return 1


# A half-open breaker lets a bounded number of requests through at a time: 1 if this caller
# may send one (the breaker is closed, or a probe slot was free and is now taken), else 0.
# KEYS: the deployment's key. ARGV: probes at a time, lease ms, key TTL s.
ACQUIRE_PROBE = Script("health_acquire_probe", PROBE_LUA, _probe_py)
