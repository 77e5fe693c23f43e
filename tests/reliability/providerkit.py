"""What the provider reliability tests share: timing seeds, OpenAI providers pointed at a FaultServer with a
seeded (and recorded) retry policy, a bundle whose providers are fault servers, and `arena run` in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena_operator.engine.providers.base import RetryPolicy
from arena_operator.engine.providers.circuit import CircuitBreaker, CircuitSettings
from arena_operator.engine.providers.openai import OpenAIProvider
from arena_operator.engine.spec import ProviderSpec
from arena_operator.engine.types import ChatRequest, Message
from tests.reliability.cluster import sized

SEEDS = sized([0, 1, 2], [0])  # a test runs per timing seed: jitter draws and the server's answer delays differ
EPS = 0.005  # clock granularity between the server's and the client's view of one instant


@dataclass(frozen=True)
class RecordingPolicy(RetryPolicy):
    """A RetryPolicy that keeps every delay it chose, so a test can hold the observed gaps against them."""

    chosen: list[tuple[int, float | None, float]] = field(default_factory=list, compare=False, repr=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        value = super().delay(attempt, retry_after)
        self.chosen.append((attempt, retry_after, value))
        return value


def openai_provider(base_url: str, seed: int, *, provider_id: str = "faulty", max_retries: int = 3,
                    base_delay: float = 0.05, max_delay: float = 0.4, timeout: str = "5s",
                    circuit: CircuitSettings | None = None, **spec: Any) -> OpenAIProvider:
    """An OpenAI provider at `base_url`, its jitter drawn from Random(seed), its breaker off unless given."""
    provider_spec = ProviderSpec.model_validate({"type": "openai", "model": "gpt-test", "base_url": base_url,
                                                 "max_retries": max_retries, "timeout": timeout, **spec})
    policy = RecordingPolicy(max_retries=max_retries, base_delay=base_delay, max_delay=max_delay,
                             rng=random.Random(seed))
    provider = OpenAIProvider(provider_id, provider_spec, retry=policy)
    provider.circuit = CircuitBreaker(provider_id, circuit or CircuitSettings(failures=0))
    return provider


def figure(test: str, **values: Any) -> None:
    """A measured figure for tests/reliability/README.md: appended as a JSON line to the file ARENA_FIGURES names."""
    path = os.environ.get("ARENA_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"test": test, **values}, default=str) + "\n")


def ask(text: str = "Hi", stream: bool = False) -> ChatRequest:
    return ChatRequest(system="Be brief.", messages=[Message("user", text)], stream=stream)


PROVIDER = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Provider
metadata: {{name: {id}}}
spec:
  type: openai
  model: gpt-test
  base_url: {base_url}
  max_retries: {max_retries}
  timeout: {timeout}
"""
SCENARIO = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Scenario
metadata: {{name: {id}}}
spec:
  description: {id}
  trials: {trials}
  turns:
    - role: user
      content: Hello?
      assertions:
        - type: contains
          params: {{patterns: ["{expect}"]}}
"""


def write_bundle(root: Path, providers: dict[str, str], *, trials: int = 6, concurrency: int = 2,
                 max_retries: int = 2, timeout: str = "5s", failing_scenario: bool = False) -> Path:
    """A bundle: one provider per (id → base URL), scenario `greet` (passes on the fault server's reply) and,
    with `failing_scenario`, `strict` (its assertion never passes), each with `trials` runs per provider."""
    root.mkdir(parents=True, exist_ok=True)
    scenarios = {"greet": "hello"} | ({"strict": "xyzzy"} if failing_scenario else {})
    for pid, url in providers.items():
        (root / f"{pid}.provider.yaml").write_text(PROVIDER.format(id=pid, base_url=url, max_retries=max_retries,
                                                                   timeout=timeout))
    for sid, expect in scenarios.items():
        (root / f"{sid}.scenario.yaml").write_text(SCENARIO.format(id=sid, trials=trials, expect=expect))
    files = "\n".join(f"    - file: {pid}.provider.yaml" for pid in providers)
    scenario_files = "\n".join(f"    - file: {sid}.scenario.yaml" for sid in scenarios)
    (root / "config.arena.yaml").write_text(f"""\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Arena
metadata: {{name: provider-faults}}
spec:
  providers:
{files}
  scenarios:
{scenario_files}
  defaults: {{concurrency: {concurrency}}}
""")
    return root


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    seconds: float
    out: Path

    def summary(self) -> dict[str, Any]:
        return json.loads((self.out / "summary.json").read_text())

    def units(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted((self.out / "units").glob("*.json"))]


async def arena_run(bundle: Path, out: Path, *args: str, env: dict[str, str] | None = None,
                    timeout: float = 90) -> Ran:
    """`arena run` in a subprocess while the test's event loop keeps serving the fault servers."""
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}  # no real key ever leaves
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arena_operator.cli", "run", str(bundle), "--out", str(out), "-q", *args,
        env={**clean, "COLUMNS": "200", **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    return Ran(proc.returncode or 0, stdout.decode(), stderr.decode(), time.monotonic() - started, out)
