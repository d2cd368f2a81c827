-- wrk script: multipart/form-data uploads of unique content (bench-only).
-- Script args (after `--`): path, authorization header value ("-" for none), file field name,
-- content size in bytes, run nonce. Every request body differs (nonce, thread, counter), so a
-- content-addressed store can never dedup it.
local threads = {}
local count = 0

function setup(thread)
  count = count + 1
  thread:set("tid", count)
  table.insert(threads, thread)
end

function init(args)
  path = args[1]
  auth = args[2]
  field = args[3] or "file"
  size = tonumber(args[4] or "4096")
  nonce = args[5] or "0"
  boundary = "wrkbenchboundary" .. tid
  pad = string.rep("x", size)
  n = 0
  head = "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"" .. field ..
    "\"; filename=\"small.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
  tail = "\r\n--" .. boundary .. "--\r\n"
  headers = {["Content-Type"] = "multipart/form-data; boundary=" .. boundary}
  if auth ~= "-" then headers["Authorization"] = auth end
end

function request()
  n = n + 1
  local tag = nonce .. "-" .. tid .. "-" .. n .. "-"
  local content = tag .. string.sub(pad, #tag + 1)
  return wrk.format("POST", path, headers, head .. content .. tail)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
