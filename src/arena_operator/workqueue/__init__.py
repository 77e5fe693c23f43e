"""Internals of `arena_operator.queue` (the Redis work queue): the Lua scripts and the key layout."""
