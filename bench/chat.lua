-- wrk script: POST one small chat completion, the same bytes to every target.
-- Environment (set by bench/wrk.py):
--   BENCH_API_KEY        bearer token (the gateway key, LiteLLM's master key, or the upstream's)
--   BENCH_BODY           the JSON request body (bench/run.py holds the one copy)
--   BENCH_MEAN_DELAY_MS  optional mean think time per connection before each request, drawn
--                        from an exponential distribution: the paced scenarios' open-ish load.
--
-- response() counts answers per status (and 503s without Retry-After). Defining it makes wrk
-- parse every response's headers, a cost paid equally by every target since all use this file.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_API_KEY") or "")
wrk.body = os.getenv("BENCH_BODY")

local threads = {}
local next_id = 0

-- Runs in the main state once per thread, before the threads start.
function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  table.insert(threads, thread)
end

statuses = {}
no_retry_after = 0
samples = {} -- the start of the first body per error status: what the error was

-- Runs in each thread's own Lua state: every thread draws from its own seeded generator, so
-- the threads' arrivals are independent rather than the same sequence in lock step.
function init(args)
  math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
  for _ = 1, 10 do math.random() end -- the first draws after seeding are poorly mixed
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 300 and samples[status] == nil then
    samples[status] = string.sub(body or "", 1, 160)
  end
  if status == 503 and headers["Retry-After"] == nil and headers["retry-after"] == nil then
    no_retry_after = no_retry_after + 1
  end
end

-- Only defined when asked for: wrk adds a timer hop per request whenever delay() exists.
local mean_ms = tonumber(os.getenv("BENCH_MEAN_DELAY_MS") or "0")
if mean_ms > 0 then
  function delay()
    -- Exponential think time -mean*ln(1-U); wrk takes whole milliseconds, so round at random
    -- (floor(x + U)) to keep the mean exact for sub-millisecond fractions.
    -- Capped at 4 s: servers close a connection idle for 5 s (uvicorn's keep-alive timeout),
    -- which wrk would count as a read error. The cap moves the mean only when it is ~1 s+.
    local d = math.min(-mean_ms * math.log(1 - math.random()), 4000)
    return math.floor(d + math.random())
  end
end

local function json_string(text)
  text = string.gsub(text, '[%c"\\\128-\255]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. text .. '"'
end

-- Percentiles and statuses as one JSON line, so nothing scrapes wrk's human-readable table.
-- wrk reports latency in microseconds.
function done(summary, latency, requests)
  local merged, missing, sampled = {}, 0, {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      merged[status] = (merged[status] or 0) + n
    end
    for status, text in pairs(thread:get("samples") or {}) do
      sampled[status] = sampled[status] or text
    end
    missing = missing + (thread:get("no_retry_after") or 0)
  end
  local parts, sample_parts = {}, {}
  for status, n in pairs(merged) do
    table.insert(parts, string.format('"%d":%d', status, n))
  end
  for status, text in pairs(sampled) do
    table.insert(sample_parts, string.format('"%d":%s', status, json_string(text)))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"statuses":{%s},"503_without_retry_after":%d,"error_samples":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ","), missing,
    table.concat(sample_parts, ",")))
end
