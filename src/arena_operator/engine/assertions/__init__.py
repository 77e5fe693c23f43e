"""Assertions: turn-level and conversation-level checks, each saying pass/fail and why."""
