"""Duplex (bidirectional streaming voice) scenarios: a scenario with `duplex:` — upstream's duplex executor.

Upstream streams each turn's audio into a realtime session and reads the model's reply as it speaks. Here a duplex
scenario runs against the providers that need no network — `mock` and `replay` — with text in place of audio: the
turns, self-play, tools and assertions run as in any scenario, within the duplex `timeout` (default 10 minutes, as
upstream) instead of the arena's run timeout. A mock answers each duplex run from the run's own scenario script, as
upstream's duplex executor has its mock session do (the run's scenario id overrides the provider's
`duplex_scenario`; `auto_respond` and `response_text` matter only outside Arena). Any other provider (OpenAI
Realtime, Gemini Live, …) would need a realtime session over the network: its runs fail at once with kind
``duplex_unsupported``, saying so. The `duplex:` block is checked at load time (`check_duplex`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .durations import parse_duration
from .manifests import Collector, validate_model
from .providers.base import Provider
from .spec import BundleDuration, Model, ScenarioSpec

DEFAULT_TIMEOUT_S = 600.0
LOCAL_TYPES = frozenset({"mock", "replay"})  # duplex providers that run here: no realtime session, no network
UNSUPPORTED_KIND = "duplex_unsupported"


class DuplexUnsupported(Exception):
    """A duplex run against a provider that would need a realtime streaming session."""

    kind = UNSUPPORTED_KIND


class _Vad(Model):
    silence_threshold_ms: int = Field(default=0, ge=0)
    min_speech_ms: int = Field(default=0, ge=0)
    max_turn_duration_s: int = Field(default=0, ge=0)


class _TurnDetection(Model):
    mode: Literal["vad", "asm"] = "vad"
    vad: _Vad | None = None


class _Resilience(Model):
    max_retries: int = Field(default=0, ge=0)
    retry_delay_ms: int = Field(default=0, ge=0)
    partial_success_min_turns: int = Field(default=0, ge=0)
    ignore_last_turn_session_end: bool | None = None


class DuplexSpec(Model):
    """A scenario's `duplex:` block, with upstream's keys."""

    timeout: BundleDuration | None = None
    turn_detection: _TurnDetection | None = None
    resilience: _Resilience | None = None


def check_duplex(scenario: ScenarioSpec, file: str, doc: Any, where: list[str | int], out: Collector) -> None:
    """Load-time check of the scenario's `duplex:` block (`where`: the scenario's path in `doc`)."""
    if scenario.duplex is not None:
        validate_model(DuplexSpec, scenario.duplex, file, doc, [*where, "duplex"], out)


def time_limit(scenario: ScenarioSpec, scenario_id: str, provider: Provider, run_timeout: float) -> float:
    """The run's time limit; raises DuplexUnsupported for a duplex run against a provider that cannot serve it."""
    if scenario.duplex is None:
        return run_timeout
    kind = provider.spec.type
    if kind not in LOCAL_TYPES:
        raise DuplexUnsupported(
            f"duplex scenario {scenario_id!r} needs a realtime streaming session with provider {provider.id!r} "
            f"({kind}, network required); this engine runs duplex scenarios against mock and replay providers "
            "only (text in place of audio) — use --mock-provider or a mock provider")
    return parse_duration(str(scenario.duplex.get("timeout") or ""), DEFAULT_TIMEOUT_S)
