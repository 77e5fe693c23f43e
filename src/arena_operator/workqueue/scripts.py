"""The Lua scripts of the work queue: every step that must not be split by a crash runs as one script.

All scripts that touch units take the same KEYS, in this order (`WorkQueue._unit_keys` in `workqueue.queue`):

    KEYS[1] stream    KEYS[2] done    KEYS[3] attempts    KEYS[4] errors    KEYS[5] counters

Every key of a job carries the job's hash tag, so in Redis Cluster a script's keys are always on one slot.
Redis runs a script to completion before any other command: no client sees half of one, and a client that dies
while a script runs does not stop it. Scripts a straggling worker may run after the job's keys were deleted
(complete, fail, extend, heartbeat) first check that the stream still exists, so they never leave orphan keys.
"""

from __future__ import annotations

# Batches travel as a few large arguments instead of several per unit (packing each argument costs the Python
# client more than Redis spends on it): unit ids as one JSON array, unit and summary JSON joined by "\n" (JSON
# text never holds a raw newline), message ids joined by " ". Replies come back the same way.

# Shared helpers, prepended to the scripts that handle deliveries and outcomes.
_PRELUDE = """
local stream, done, attempts, errors, counters = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local CHUNK = 500  -- arguments unpacked into one command (Lua's C stack bounds unpack)

local function split(text, sep)
  local out, pos = {}, 1
  if text == '' then return out end
  while true do
    local at = string.find(text, sep, pos, true)
    if not at then
      out[#out + 1] = string.sub(text, pos)
      return out
    end
    out[#out + 1] = string.sub(text, pos, at - 1)
    pos = at + 1
  end
end

local function settle(group, msgid)
  redis.call('XACK', stream, group, msgid)
  redis.call('XDEL', stream, msgid)
end

-- XACK + XDEL of many messages: two commands per chunk, not two per message.
local function settle_all(group, msgids)
  for i = 1, #msgids, CHUNK do
    local last = math.min(i + CHUNK - 1, #msgids)
    redis.call('XACK', stream, group, unpack(msgids, i, last))
    redis.call('XDEL', stream, unpack(msgids, i, last))
  end
end

-- HMGET of many fields, chunked; values in the order of `fields` (false when absent).
local function hmget(key, fields)
  local out = {}
  for i = 1, #fields, CHUNK do
    local values = redis.call('HMGET', key, unpack(fields, i, math.min(i + CHUNK - 1, #fields)))
    for j = 1, #values do out[i + j - 1] = values[j] end
  end
  return out
end

-- HSET of many field/value pairs (a flat list), chunked.
local function hset_all(key, pairs_)
  for i = 1, #pairs_, 2 * CHUNK do
    redis.call('HSET', key, unpack(pairs_, i, math.min(i + 2 * CHUNK - 1, #pairs_)))
  end
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

-- Deliveries of messages {msgid, uid or false}, in order: the attempt number of each, or 0 when the unit needs no
-- run (already recorded, or delivered max_attempts times without an outcome: then it is recorded failed). Exactly
-- what one HEXISTS done + HINCRBY attempts per message in turn would do, with one HMGET and one HSET of
-- `attempts` per batch: a unit in `done` was delivered before (every record follows a delivery, which counts
-- it), so only a unit with attempts already counted can be done.
local function deliver_all(group, entries, max_attempts, timeout)
  local out, uids, skip = {}, {}, {}
  for _, entry in ipairs(entries) do
    if entry[2] then uids[#uids + 1] = entry[2] end
  end
  local prior, current, k = hmget(attempts, uids), {}, 0
  for _, uid in ipairs(uids) do
    k = k + 1
    if current[uid] == nil then current[uid] = tonumber(prior[k] or '0') end
  end
  local updated, changed = {}, {}
  for i, entry in ipairs(entries) do
    local msgid, uid = entry[1], entry[2]
    local attempt = 0
    if uid and not (current[uid] > 0 and redis.call('HEXISTS', done, uid) == 1) then
      attempt = current[uid] + 1
      current[uid] = attempt
      if not changed[uid] then
        changed[uid] = true
        updated[#updated + 1] = uid
      end
      if attempt > max_attempts then
        -- Delivered max_attempts times without an outcome: each holder died or stalled (poison unit).
        local err = redis.call('HGET', errors, uid)
        if not err then
          err = 'no result after ' .. max_attempts .. ' deliveries (visibility timeout ' .. timeout .. 's each)'
        end
        record_failed(uid, attempt - 1, err)
        attempt = 0
      end
    end
    if attempt == 0 then skip[#skip + 1] = msgid end
    out[i] = attempt
  end
  local flat = {}
  for _, uid in ipairs(updated) do
    flat[#flat + 1] = uid
    flat[#flat + 1] = current[uid]
  end
  hset_all(attempts, flat)
  settle_all(group, skip)
  return out
end

-- Outcomes of a batch: msgids " "-joined, uids a JSON array, summaries "\\n"-joined, counter fields ","-joined.
-- Per unit first writer wins (HMGET of `done`, then one HSET of the new entries; the script is atomic, so this is
-- HSETNX per unit); every message is acked and deleted; the counters get one HINCRBY each per batch.
-- Returns a string of '1' (recorded by this call) and '0' per unit.
local function complete_all(group, msgids_s, uids_s, summaries_s, fields_s)
  local msgids, uids = split(msgids_s, ' '), cjson.decode(uids_s)
  local summaries, fields = split(summaries_s, '\\n'), split(fields_s, ',')
  if redis.call('EXISTS', stream) == 0 then return string.rep('0', #uids) end
  local existing, taken, flat, flags, tally = hmget(done, uids), {}, {}, {}, {}
  for i, uid in ipairs(uids) do
    if not existing[i] and not taken[uid] then
      taken[uid] = true
      flat[#flat + 1] = uid
      flat[#flat + 1] = summaries[i]
      tally[fields[i]] = (tally[fields[i]] or 0) + 1
      flags[i] = '1'
    else
      flags[i] = '0'
    end
  end
  hset_all(done, flat)
  settle_all(group, msgids)
  local completed = 0
  for field, n in pairs(tally) do
    redis.call('HINCRBY', counters, field, n)
    completed = completed + n
  end
  if completed > 0 then redis.call('HINCRBY', counters, 'completed', completed) end
  return table.concat(flags)
end

-- Claim up to `count` entries for `consumer` without blocking: idle ones past the visibility timeout first
-- (XAUTOCLAIM from `cursor`, at most `reclaim` of them), then new ones. Returns {next_cursor, msgids " "-joined,
-- attempts " "-joined, unit JSON "\\n"-joined} of the entries to run.
local function claim(group, consumer, min_idle, cursor, count, max_attempts, timeout, reclaim)
  local entries = {}
  local auto = redis.call('XAUTOCLAIM', stream, group, consumer, min_idle, cursor, 'COUNT', reclaim)
  local next_cursor = auto[1]
  for _, entry in ipairs(auto[2]) do
    if entry[2] then entries[#entries + 1] = {entry[1], field_of(entry[2], 'id'), field_of(entry[2], 'u')} end
  end
  if #entries < count then
    local new = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count - #entries, 'STREAMS', stream, '>')
    if new then
      for _, entry in ipairs(new[1][2]) do
        local fields = entry[2]
        local uid, unit = false, false
        if fields[1] == 'id' and fields[3] == 'u' then uid, unit = fields[2], fields[4]
        else uid, unit = field_of(fields, 'id'), field_of(fields, 'u') end
        entries[#entries + 1] = {entry[1], uid, unit}
      end
    end
  end
  local delivered = deliver_all(group, entries, max_attempts, timeout)
  local msgids, tries, units = {}, {}, {}
  for i, entry in ipairs(entries) do
    if delivered[i] > 0 then
      msgids[#msgids + 1], tries[#tries + 1], units[#units + 1] = entry[1], delivered[i], entry[3]
    end
  end
  return {next_cursor, table.concat(msgids, ' '), table.concat(tries, ' '), table.concat(units, '\\n')}
end
"""

# KEYS planned, stream, counters, sealed; ARGV unit ids (JSON array), unit JSON ("\n"-joined, same order)
# → how many ids were new. Membership is one SMISMEMBER and new ids one SADD per chunk; each new unit one XADD.
ENQUEUE = """
local planned, stream, counters, sealed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local CHUNK = 500
local ids, text, payloads, pos = cjson.decode(ARGV[1]), ARGV[2], {}, 1
for i = 1, #ids do
  local at = string.find(text, '\\n', pos, true)
  if at then payloads[i] = string.sub(text, pos, at - 1); pos = at + 1 else payloads[i] = string.sub(text, pos) end
end
local member = {}
for i = 1, #ids, CHUNK do
  local flags = redis.call('SMISMEMBER', planned, unpack(ids, i, math.min(i + CHUNK - 1, #ids)))
  for j = 1, #flags do member[i + j - 1] = flags[j] end
end
if redis.call('EXISTS', sealed) == 1 then
  for i = 1, #ids do
    if member[i] == 0 then
      return redis.error_reply('SEALED planning is finished; unit ' .. ids[i] .. ' was not planned')
    end
  end
end
local new, seen = {}, {}
for i = 1, #ids do
  local id = ids[i]
  if member[i] == 0 and not seen[id] then
    seen[id] = true
    redis.call('XADD', stream, '*', 'id', id, 'u', payloads[i])
    new[#new + 1] = id
  end
end
for i = 1, #new, CHUNK do
  redis.call('SADD', planned, unpack(new, i, math.min(i + CHUNK - 1, #new)))
end
if #new > 0 then redis.call('HINCRBY', counters, 'total', #new) end
return #new
"""

# ARGV group, consumer, min_idle_ms, cursor, count, max_attempts, timeout_s, reclaim (idle entries at most)
# → {next_cursor, msgids, attempts, units} (see `claim` above): reclaimed units first, then new ones; never blocks.
CLAIM = _PRELUDE + """
return claim(ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], ARGV[8])
"""

# ARGV group, max_attempts, timeout_s, msgid, uid, msgid, uid, ... → attempt per message (0: skip it)
DELIVER = _PRELUDE + """
local entries = {}
for i = 4, #ARGV, 2 do entries[#entries + 1] = {ARGV[i], ARGV[i + 1]} end
return deliver_all(ARGV[1], entries, tonumber(ARGV[2]), ARGV[3])
"""

# ARGV group, msgids, uids, summaries, counter fields (see `complete_all`) → '1'/'0' per unit
COMPLETE = _PRELUDE + """
return complete_all(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
"""

# One round trip per batch for a worker: record the outcomes of the batch it ran, then claim the next one.
# ARGV group, msgids, uids, summaries, fields (as COMPLETE), consumer, min_idle_ms, cursor, count, max_attempts,
# timeout_s, reclaim → {'1'/'0' per completed unit, next_cursor, msgids, attempts, units}
COMPLETE_CLAIM = _PRELUDE + """
local flags = ''
if ARGV[3] ~= '[]' then flags = complete_all(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]) end
local claimed = claim(ARGV[1], ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11],
                      ARGV[12])
return {flags, claimed[1], claimed[2], claimed[3], claimed[4]}
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
