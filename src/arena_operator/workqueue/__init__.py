"""Internals of `arena_operator.workqueue.queue` (the Redis work queue): the Lua scripts and the key layout."""
