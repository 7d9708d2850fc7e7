-- wrk script: POST one small chat completion, the same bytes direct and through the gateway.
-- Environment (set by bench/run.py):
--   BENCH_API_KEY   bearer token (the gateway key, or the upstream's key for the direct run)
--   BENCH_BODY      the JSON request body (bench/run.py holds the one copy)
--   BENCH_DELAY_MS  optional think time per connection before each request; pacing the load
--                   below saturation is how the "half capacity" scenario is produced.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_API_KEY") or "")
wrk.body = os.getenv("BENCH_BODY")

-- Only defined when asked for: wrk adds a timer hop per request whenever delay() exists.
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

-- Percentiles as one JSON line, so run.py never scrapes wrk's human-readable table.
-- wrk reports latency in microseconds.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
