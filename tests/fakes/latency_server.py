"""The OpenAI-compatible fake (llm_servers.FakeLLMServer) in a process of its own, answering with a known latency
distribution: request i waits ``delays[i mod len]`` before replying. Load tests and the load benchmark use it so
that the server's work never shares the measured client's event loop (or its CPU accounting).

    python -m tests.fakes.latency_server --delay-ms 50            # fixed 50 ms
    python -m tests.fakes.latency_server --delay-ms 20 30 40      # cycles through the values

It prints ``ready <base url>`` on stdout once it listens, and ``served <n>`` on SIGTERM before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.fakes.llm_servers import FakeLLMServer, Recorded, Reply

REPO = Path(__file__).resolve().parents[2]


class _Cycle:
    def __init__(self, delays: list[float]) -> None:
        self.delays, self.served = delays, 0

    def __call__(self, request: Recorded) -> Reply:
        delay = self.delays[self.served % len(self.delays)]
        self.served += 1
        return Reply("echo: pong", delay=delay, usage=(20, 5))


async def _serve(delays_ms: list[float]) -> None:
    cycle = _Cycle([d / 1000 for d in delays_ms])
    server = FakeLLMServer(cycle)
    server.requests = _Discard()  # a long benchmark must not keep every request in memory
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        print(f"ready {server.openai_url}", flush=True)
        await stop.wait()
    print(f"served {cycle.served}", flush=True)


class _Discard(list):  # type: ignore[type-arg]
    def append(self, item: object) -> None:
        return None


@contextlib.contextmanager
def latency_server(delays_ms: list[float]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start the server process; yields (OpenAI base URL, process). Stopped (SIGTERM) on exit."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.latency_server", "--delay-ms",
                             *(f"{d:g}" for d in delays_ms)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError(f"latency server did not start: {line}")
        yield line[1], proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay-ms", type=float, nargs="+", default=[50.0])
    asyncio.run(_serve(parser.parse_args().delay_ms))


if __name__ == "__main__":
    main()
