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

statuses = {}
first_error = ""

-- Count responses by status; keep the first non-2xx/3xx body to say what went wrong.
function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
  if status >= 400 and first_error == "" then
    first_error = k .. " " .. string.sub(body or "", 1, 300)
  end
end

local function json_string(s)
  return '"' .. string.gsub(s, '[%c"\\\128-\255]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end) .. '"'
end

function done(summary, latency, requests)
  local by_status = {}
  local err = ""
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do by_status[k] = (by_status[k] or 0) + v end
    if err == "" then err = t:get("first_error") end
  end
  local parts = {}
  for k, v in pairs(by_status) do table.insert(parts, '"' .. k .. '":' .. v) end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"statuses":{%s},"first_error":%s}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max, table.concat(parts, ","), json_string(err)))
end
