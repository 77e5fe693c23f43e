"""The Lua scripts of the work queue: every step that must not be split by a crash runs as one script.

All scripts that touch units take the same KEYS, in this order (`WorkQueue._unit_keys` in `workqueue.queue`):

    KEYS[1] stream    KEYS[2] done    KEYS[3] attempts    KEYS[4] errors    KEYS[5] counters

Every key of a job carries the job's hash tag, so in Redis Cluster a script's keys are always on one slot.
Redis runs a script to completion before any other command: no client sees half of one, and a client that dies
while a script runs does not stop it. Scripts a straggling worker may run after the job's keys were deleted
(complete, fail, extend, heartbeat) first check that the stream still exists, so they never leave orphan keys.
"""

from __future__ import annotations

# Shared helpers, prepended to the scripts that handle deliveries and outcomes.
_PRELUDE = """
local stream, done, attempts, errors, counters = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

local function settle(group, msgid)
  redis.call('XACK', stream, group, msgid)
  redis.call('XDEL', stream, msgid)
end

-- First writer wins: only the call that creates the unit's entry in `done` counts it.
local function record(uid, summary, field)
  if redis.call('HSETNX', done, uid, summary) == 0 then return 0 end
  redis.call('HINCRBY', counters, field, 1)
  return 1
end

local function record_failed(uid, attempt, err)
  return record(uid, cjson.encode({outcome = 'failed', attempt = attempt, error = err}), 'failed')
end

local function field_of(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return false
end

-- One delivery of message `msgid` (unit `uid`): the attempt number, or 0 when the unit needs no run.
local function deliver(group, msgid, uid, max_attempts, timeout)
  if not uid or redis.call('HEXISTS', done, uid) == 1 then
    settle(group, msgid)
    return 0
  end
  local attempt = redis.call('HINCRBY', attempts, uid, 1)
  if attempt > max_attempts then
    -- Delivered max_attempts times without an outcome: each holder died or stalled (poison unit).
    local err = redis.call('HGET', errors, uid)
    if not err then
      err = 'no result after ' .. max_attempts .. ' deliveries (visibility timeout ' .. timeout .. 's each)'
    end
    record_failed(uid, attempt - 1, err)
    settle(group, msgid)
    return 0
  end
  return attempt
end
"""

# KEYS planned, stream, counters, sealed; ARGV unit id, payload, unit id, payload, ...
ENQUEUE = """
local planned, stream, counters, sealed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', sealed) == 1 then
  for i = 1, #ARGV, 2 do
    if redis.call('SISMEMBER', planned, ARGV[i]) == 0 then
      return redis.error_reply('SEALED planning is finished; unit ' .. ARGV[i] .. ' was not planned')
    end
  end
end
local added = 0
for i = 1, #ARGV, 2 do
  if redis.call('SADD', planned, ARGV[i]) == 1 then
    redis.call('XADD', stream, '*', 'id', ARGV[i], 'u', ARGV[i + 1])
    added = added + 1
  end
end
if added > 0 then redis.call('HINCRBY', counters, 'total', added) end
return added
"""

# ARGV group, consumer, min_idle_ms, cursor, count, max_attempts, timeout_s
# → {next_cursor, {msgid, uid, payload, attempt}, ...}: reclaimed units first, then new ones; never blocks.
CLAIM = _PRELUDE + """
local group, consumer, cursor = ARGV[1], ARGV[2], ARGV[4]
local count, max_attempts, timeout = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local entries = {}
local auto = redis.call('XAUTOCLAIM', stream, group, consumer, ARGV[3], cursor, 'COUNT', count)
for _, entry in ipairs(auto[2]) do
  if entry[2] then table.insert(entries, entry) end
end
if #entries < count then
  local new = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count - #entries, 'STREAMS', stream, '>')
  if new then
    for _, entry in ipairs(new[1][2]) do table.insert(entries, entry) end
  end
end
local out = {auto[1]}
for _, entry in ipairs(entries) do
  local uid = field_of(entry[2], 'id')
  local attempt = deliver(group, entry[1], uid, max_attempts, timeout)
  if attempt > 0 then table.insert(out, {entry[1], uid, field_of(entry[2], 'u'), attempt}) end
end
return out
"""

# ARGV group, max_attempts, timeout_s, msgid, uid, msgid, uid, ... → attempt per message (0: skip it)
DELIVER = _PRELUDE + """
local out = {}
for i = 4, #ARGV, 2 do
  table.insert(out, deliver(ARGV[1], ARGV[i], ARGV[i + 1], tonumber(ARGV[2]), ARGV[3]))
end
return out
"""

# ARGV group, then per unit: msgid, uid, summary, outcome counter → per unit 1 if this call recorded it
COMPLETE = _PRELUDE + """
local out, tally = {}, {}
if redis.call('EXISTS', stream) == 0 then
  for i = 2, #ARGV, 4 do table.insert(out, 0) end
  return out
end
for i = 2, #ARGV, 4 do
  local uid, field = ARGV[i + 1], ARGV[i + 3]
  local recorded = redis.call('HSETNX', done, uid, ARGV[i + 2])
  if recorded == 1 then tally[field] = (tally[field] or 0) + 1 end
  settle(ARGV[1], ARGV[i])
  table.insert(out, recorded)
end
-- One HINCRBY per counter and batch; the script is atomic, so the tally is exact.
local completed = 0
for field, n in pairs(tally) do
  redis.call('HINCRBY', counters, field, n)
  completed = completed + n
end
if completed > 0 then redis.call('HINCRBY', counters, 'completed', completed) end
return out
"""

# ARGV group, msgid, uid, error, retryable (1/0), max_attempts → 1 recorded failed, 0 retrying or already done
FAIL = _PRELUDE + """
local group, msgid, uid, err = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', stream) == 0 then return 0 end
if redis.call('HEXISTS', done, uid) == 1 then
  settle(group, msgid)
  return 0
end
redis.call('HSET', errors, uid, err)
local attempt = tonumber(redis.call('HGET', attempts, uid) or '0')
if ARGV[5] == '0' or attempt >= tonumber(ARGV[6]) then
  record_failed(uid, attempt, err)
  settle(group, msgid)
  return 1
end
-- Retry now rather than after the visibility timeout: replace the message by a fresh copy. Only the caller
-- that still finds the message pending makes the copy, so a late duplicate failure cannot fork a second one.
local entry = redis.call('XRANGE', stream, msgid, msgid)[1]
if redis.call('XACK', stream, group, msgid) == 1 and entry then
  redis.call('XDEL', stream, msgid)
  redis.call('XADD', stream, '*', unpack(entry[2]))
  redis.call('HINCRBY', counters, 'retried', 1)
end
return 0
"""

# KEYS stream; ARGV group, consumer, msgid → 1 if the consumer still held the message (idle time now reset)
EXTEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2]) == 0 then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"""

# KEYS sealed, counters, aggregator, aggregated; ARGV consumer, lease_ms → 1 if this consumer aggregates
CLAIM_AGGREGATION = """
if redis.call('EXISTS', KEYS[4]) == 1 or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local c = redis.call('HMGET', KEYS[2], 'total', 'completed', 'failed')
if tonumber(c[2] or '0') + tonumber(c[3] or '0') ~= tonumber(c[1] or '0') then return 0 end
if redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

# KEYS heartbeats, stream; ARGV consumer, retention_s. Scores are the Redis server's clock, which all pods share.
HEARTBEAT = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return 1
"""

# KEYS heartbeats; ARGV within_s → consumers seen within the last within_s seconds
ACTIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]), '+inf')
"""

# Datagen (workqueue.datagen). KEYS hashes, stream; ARGV hash, owner, hash, owner, ... → per pair 1 if `owner` owns
# the content hash: the first claim of a hash wins, and the same owner claiming it again gets it again.
DATAGEN_CLAIM = """
local out = {}
local alive = redis.call('EXISTS', KEYS[2]) == 1
for i = 1, #ARGV, 2 do
  if alive and (redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1
                or redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1]) then
    table.insert(out, 1)
  else
    table.insert(out, 0)
  end
end
return out
"""

# KEYS hash, stream; ARGV field, value → HSET, unless the job's keys are gone (a straggler after delete)
DATAGEN_SET = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
