-- wrk script for bench/accept.py: POST one message to /api/v1/messages on every request.
--
--   wrk -t1 -cN -dS --latency -s bench/accept.lua http://127.0.0.1:PORT -- KEY BODY_FILE [RATE]
--
-- KEY: the API key; BODY_FILE: the JSON body to send; RATE (optional): requests per second for
-- this wrk thread, paced by delay() so latency is measured below saturation. done() prints one
-- JSON line that bench/accept.py reads.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local interval_ms = nil
local next_slot_ms = nil
non_accepted = 0  -- global: done() reads it from each thread with thread:get()

function init(args)
  local file = assert(io.open(args[2], "rb"))
  local body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.path = "/api/v1/messages"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  if args[3] and tonumber(args[3]) > 0 then
    interval_ms = 1000 / tonumber(args[3])
  end
end

-- Paced: one request per slot on a fixed schedule shared by the thread's connections, so a slow
-- answer does not lower the offered rate (as it would with a fixed pause per connection). wrk
-- decides whether to call delay() before init() sees the arguments, so it always exists.
function delay()
  if interval_ms == nil then
    return 0
  end
  local now = now_ms()
  if next_slot_ms == nil or next_slot_ms < now - 1000 then
    next_slot_ms = now  -- the start, or too far behind: do not burst to catch up
  end
  local slot = next_slot_ms
  next_slot_ms = next_slot_ms + interval_ms
  return math.max(0, slot - now)
end

function response(status, headers, body)
  if status ~= 202 then
    non_accepted = non_accepted + 1
  end
end

function done(summary, latency, requests)
  local not_accepted = 0
  for _, thread in ipairs(threads) do
    not_accepted = not_accepted + thread:get("non_accepted")
  end
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_s": %.3f, "p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, '
      .. '"non_202": %d, "socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}}\n',
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    not_accepted, errors.connect, errors.read, errors.write, errors.timeout
  ))
end
