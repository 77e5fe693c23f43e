"""Handing a dead worker's units back at once instead of after the visibility timeout.

A unit a worker holds is reclaimed by another once it has been idle for the visibility timeout (120 s by default):
long enough for the slowest provider call, far too long to wait for a pod that is known to be gone. The operator
knows sooner — the worker's pod failed, or its heartbeat stopped (`HEARTBEAT_SECONDS`, renewed by every worker) —
and then `release` marks that consumer's pending entries idle for the full timeout, so the next claim of any
worker takes them over. Accounting stays exact: a released unit's late outcome from a worker that was only slow,
not dead, is the first or the second record of that unit, and only the first counts (workqueue.queue).
"""

from __future__ import annotations

from collections.abc import Iterable

from .queue import GROUP, WorkQueue

HEARTBEAT_SECONDS = 5.0  # how often a worker renews its heartbeat
STALE_AFTER_SECONDS = 4 * HEARTBEAT_SECONDS  # a worker silent this long is taken for dead
MAX_RELEASED_PER_CONSUMER = 1000  # a worker holds at most its concurrency; this only bounds the script

# KEYS stream, heartbeats; ARGV group, idle_ms, stale_s (0: none), max, consumer... → entries released.
# The consumers named, plus those whose last heartbeat is older than stale_s by the Redis server's clock.
RELEASE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local idle, stale = tonumber(ARGV[2]), tonumber(ARGV[3])
local dead = {}
for i = 5, #ARGV do dead[ARGV[i]] = true end
if stale > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  for _, consumer in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - stale)) do dead[consumer] = true end
end
local released = 0
for consumer, _ in pairs(dead) do
  for _, entry in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[4]), consumer)) do
    if entry[3] < idle then
      redis.call('XCLAIM', KEYS[1], ARGV[1], consumer, 0, entry[1], 'IDLE', idle, 'JUSTID')
      released = released + 1
    end
  end
end
return released
"""


async def release(queue: WorkQueue, dead: Iterable[str] = (), stale_after: float = STALE_AFTER_SECONDS) -> int:
    """Make the units held by the `dead` consumers, and by every consumer silent for `stale_after` seconds
    (0: none), claimable now. Returns how many units were released (0 when the job has no stream)."""
    script = queue.redis.register_script(RELEASE)
    idle_ms = int(queue.visibility_timeout * 1000) + 1
    keys = [queue.keys["stream"], queue.keys["heartbeats"]]
    return int(await script(keys=keys, args=[GROUP, idle_ms, stale_after, MAX_RELEASED_PER_CONSUMER, *dead]))
