-- post_image.lua - wrk script: POST one image file to /classify, report a JSON summary.
-- usage: IMAGE=path [CONTENT_TYPE=image/png] wrk -s bench/post_image.lua -c C -d 15s http://127.0.0.1:PORT/classify
local path = os.getenv("IMAGE") or "tests/data/images/chelsea.jpg"
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE") or "image/jpeg"

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local non2xx = summary.errors.status
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "req_per_s": %.3f, "p50_ms": %.1f, "p90_ms": %.1f, ' ..
    '"p99_ms": %.1f, "max_ms": %.1f, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, secs, (summary.requests - non2xx) / secs, latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3, non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
