"""What every benchmark script shares: the machine line, a child process timed under `/usr/bin/time -v`, a private
`redis-server`, the generated `contains` bundle. Imported as `bench.benchlib` (each script drops bench/ from
sys.path, where bench/queue.py would shadow the standard library's `queue`, and puts the repository first)."""

from __future__ import annotations

import datetime
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARENA = ROOT / ".venv" / "bin" / "arena"
TIME = Path("/usr/bin/time")


def machine() -> str:
    """Cores, memory, load average, interpreter and date: the line each table starts with."""
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{datetime.date.today()}: {len(os.sched_getaffinity(0))} cpus, {total_kb / 2**20:.0f} GiB, load average "
            f"{load}, python {platform.python_version()}")


@dataclass
class Timed:
    wall: float
    rss_mb: float
    stdout: str
    stderr: str
    returncode: int


def timed(command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
          check: bool = True) -> Timed:
    """Run `command` as a child: wall time and its peak RSS ("Maximum resident set size" of /usr/bin/time -v, or
    getrusage of the children when /usr/bin/time is missing)."""
    full = ["/usr/bin/time", "-v", *command] if TIME.exists() else command
    started = time.perf_counter()
    done = subprocess.run(full, capture_output=True, text=True, cwd=cwd, env=env, check=False)
    wall = time.perf_counter() - started
    if check and done.returncode != 0:
        sys.exit(f"{command[0]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    rss_kb = int(match.group(1)) if match else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return Timed(wall, rss_kb / 1024, done.stdout, done.stderr, done.returncode)


def start_redis(*extra: str) -> tuple[subprocess.Popen[bytes], int]:
    """A private redis-server (no persistence) on a free loopback port, once it answers PING."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(7) == b"+PONG\r\n":
                    return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.01)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(10)


def peak_rss_mb() -> float:
    """This process's peak RSS so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
