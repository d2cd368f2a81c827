-- wrk script: GETs cycling through a list of pre-minted paths (signed URLs, file URLs).
-- Script args (after `--`): file with one path (+query) per line, and optionally an
-- Authorization header value (lists). Each thread starts at a different offset so connections
-- do not march in lockstep.
local threads = {}
local count = 0

function setup(thread)
  count = count + 1
  thread:set("tid", count)
  table.insert(threads, thread)
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    if #line > 0 then table.insert(paths, line) end
  end
  if #paths == 0 then error("no paths in " .. args[1]) end
  i = (tid * 7919) % #paths
  headers = {}
  if args[2] and args[2] ~= "-" then headers["Authorization"] = args[2] end
end

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], headers)
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
