"""`arena operator`: a real `kopf run` of the handler modules against the current cluster."""

from __future__ import annotations

import asyncio
import importlib
import logging

import kopf

HANDLER_MODULES = ("startup", "indexes", "arenasource", "arenaconfig", "arenajob")


def register_handlers() -> None:
    """Importing the modules registers their handlers in kopf's default registry."""
    for module in HANDLER_MODULES:
        importlib.import_module(f"arena_operator.operator.{module}")


def run(namespaces: list[str], liveness: str | None = None, log_format: str = "text") -> None:
    register_handlers()
    logging.getLogger().handlers.clear()  # kopf installs its own (text or JSON) handler: one line per record
    kopf.configure(verbose=False, log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL,
                   log_refkey="object" if log_format == "json" else None)
    asyncio.run(kopf.operator(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,  # [] with clusterwide (kopf's observer iterates it: None crashed at start-up)
        liveness_endpoint=liveness,
    ))
