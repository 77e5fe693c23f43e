"""Bundle validation with a time and memory budget, in a child process: a bundle is untrusted input, and one
hostile bundle (a YAML alias bomb, a template that expands forever) must cost the operator a failed condition,
not its memory, its event loop or its life. The child is a fresh interpreter (spawn: safe beside threads and the
event loop), limited with RLIMIT_AS, killed when the time is up."""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from ..api.conditions import INVALID_BUNDLE, VALIDATION_BUDGET_EXCEEDED
from .errors import SourceError

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MEMORY_BYTES = 1024 * 1024 * 1024
MAX_PROBLEMS_SHOWN = 5


@dataclass(frozen=True)
class Budget:
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    memory: int = DEFAULT_MEMORY_BYTES  # address space of the child, bytes


def _problems(directory: str) -> list[str]:
    """Run in the child: the bundle's problems as text (empty when it loads)."""
    from ..engine.bundle import load_bundle
    from ..engine.envexpand import cluster_env, confine_process
    from ..engine.errors import BundleInvalid

    confine_process(cluster_env())  # the operator's environment (Redis URL, tokens) is not the bundle's to read
    try:
        load_bundle(Path(directory))
    except BundleInvalid as exc:
        return [str(p) for p in exc.problems]
    return []


def _child(conn: Connection, directory: str, memory: int) -> None:
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        conn.send(("ok", _problems(directory)))
    except MemoryError:
        conn.send(("memory", []))
    except RecursionError:
        conn.send(("recursion", []))
    except Exception as exc:  # an engine bug on odd input is still this bundle's problem, named
        conn.send(("crash", [f"{type(exc).__name__}: {exc}"[:500]]))
    finally:
        conn.close()


def _run(directory: Path, budget: Budget) -> tuple[str, list[str]]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(child, str(directory), budget.memory), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(budget.timeout):
            return "timeout", []
        try:
            return parent.recv()
        except EOFError:  # killed by the kernel (the limit hit outside Python's allocator)
            return "memory", []
    finally:
        if process.is_alive():
            process.kill()
        process.join(5)
        parent.close()


async def validate_bounded(directory: Path, budget: Budget) -> None:
    """Raise SourceError InvalidBundle (every problem named) or ValidationBudgetExceeded; return when it loads."""
    verdict, problems = await asyncio.to_thread(_run, directory, budget)
    if verdict == "timeout":
        raise SourceError(VALIDATION_BUDGET_EXCEEDED, f"loading the bundle took longer than {budget.timeout:g}s "
                          "(a YAML alias bomb or a runaway template?); nothing of it was used")
    if verdict in ("memory", "recursion"):
        what = f"more than {budget.memory // (1024 * 1024)} MiB" if verdict == "memory" else "too deep a nesting"
        raise SourceError(VALIDATION_BUDGET_EXCEEDED, f"loading the bundle needed {what} (a YAML alias bomb or "
                          "a runaway template?); nothing of it was used")
    if verdict == "crash":
        raise SourceError(INVALID_BUNDLE, f"the bundle could not be read: {problems[0]}")
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = len(problems) - MAX_PROBLEMS_SHOWN
        raise SourceError(INVALID_BUNDLE, shown + (f" (and {more} more)" if more > 0 else ""))
