"""The one way operator and workers connect to Redis: commands retried with jittered backoff across a restart.

A Redis restart (a rolling update, a failover, an OOM kill) drops every connection for a few seconds. Without
retries each dropped command would kill a worker (and its pod would count against the Job's backoffLimit); with
them, a worker's commands wait for the server for up to about a minute (`WORKER_RETRIES` attempts, backoff capped at
`BACKOFF_CAP_SECONDS`) and then fail as before. The operator retries briefly (`OPERATOR_RETRIES`): a reconcile pass
that still fails says RedisUnavailable and is retried by its timer, which must not be held up for a minute.
Every queue operation is safe to repeat (workqueue.queue), so a command retried after the server already ran it
changes nothing. Scripts are reloaded by redis-py when a restarted server no longer knows them.

When all `MAX_CONNECTIONS` of a client are busy (200 jobs' timers at once in the operator), a command waits for
one (up to `POOL_WAIT_SECONDS`) instead of failing at once with MaxConnectionsError, which made passes of healthy
jobs report RedisUnavailable.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
from redis.retry import Retry

WORKER_RETRIES = 16
OPERATOR_RETRIES = 3
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 5.0
MAX_CONNECTIONS = 100  # per client, redis-py's default
POOL_WAIT_SECONDS = 20.0  # a command waits this long for a free connection, then fails with ConnectionError


def connect(url: str, retries: int = WORKER_RETRIES) -> aioredis.Redis:
    """A client for `url` whose commands survive a Redis restart (see the module docstring)."""
    retry = Retry(ExponentialWithJitterBackoff(cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS), retries)
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT_SECONDS,
                                                    retry=retry,
                                                    retry_on_error=[ConnectionError, TimeoutError, BusyLoadingError])
    client = aioredis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # aclose() closes the pool, as from_url's client does
    return client
