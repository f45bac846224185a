-- The one wrk script of the benchmark, configured by bench/wrk.py through environment variables:
--   BENCH_METHOD  GET | POST (default GET)
--   BENCH_BODY    request body, sent as application/json when not empty
--   BENCH_AUTH    value of the Authorization header, when not empty
--   BENCH_PATHS   newline-separated request paths; with more than one, requests rotate over them
-- done() prints one line "BENCH_JSON {...}" that bench/wrk.py parses (latencies in microseconds).

local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY") or ""
local auth = os.getenv("BENCH_AUTH") or ""
local paths = {}
for path in string.gmatch(os.getenv("BENCH_PATHS") or "", "[^\n]+") do
  paths[#paths + 1] = path
end

wrk.method = method
if body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
if auth ~= "" then
  wrk.headers["Authorization"] = auth
end
if #paths == 1 then
  wrk.path = paths[1]
end

-- Only a rotating run defines request(): without it wrk sends one pre-built request, its fastest mode.
if #paths > 1 then
  local counter = math.random(#paths)
  function request()
    counter = counter % #paths + 1
    return wrk.format(nil, paths[counter])
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,' ..
    '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%.0f,"p50":%.0f,"p90":%.0f,"p99":%.0f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
