-- wrk script for benchmarks/wrk.sh: POSTs one ~60-byte JSON event per request
-- to the stream whose id is in STREAM_ID, with the API key in API_KEY.
-- wrk itself picks the host from its URL argument; this only sets the
-- method, path, headers and body, once, so each request costs wrk nothing.
local stream = os.getenv("STREAM_ID")
local key = os.getenv("API_KEY") or ""
if stream == nil or stream == "" then
  error("STREAM_ID is not set")
end

wrk.method = "POST"
wrk.path = "/v1/streams/" .. stream .. "/events"
wrk.headers["Content-Type"] = "application/json"
if key ~= "" then
  wrk.headers["X-API-Key"] = key
end
wrk.body = '{"sensor":"rtbench-vegeta","temp":21.5,"seq":1234567,"ok":1}'

-- Count answers by status, so a run that is mostly 429s or 503s says so
-- instead of printing a fast but meaningless requests/s. statuses is a
-- global of each thread's Lua state (done() reads it with thread:get, which
-- sees globals only).
statuses = {}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses") or {}
    for code, n in pairs(s) do
      total[code] = (total[code] or 0) + n
    end
  end
  io.write("status codes:")
  for code, n in pairs(total) do
    io.write(string.format(" %d×%d", code, n))
  end
  io.write("\n")
  io.write(string.format("latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
