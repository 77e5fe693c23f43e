"""Where runs are executed (`arena run`, the cluster worker): the composite executor upstream's engine has. A
combination with a recording is an eval (engine/evalmode.py), any other a scenario (engine/executor.py); with a
SessionRecorder, each scenario run's conversation is recorded (engine/recording.py) and RunResult names the file."""

from __future__ import annotations

import asyncio
import logging

from .bundle import Bundle
from .evalmode import EvalExecutor
from .executor import ConversationExecutor
from .plan import RunCombination
from .providers.base import Provider
from .recording import SessionRecorder
from .result import RunResult

log = logging.getLogger(__name__)


class RunExecutor:
    """Routes each combination to its executor; safe to share across concurrent runs."""

    def __init__(self, bundle: Bundle, providers: dict[str, Provider],
                 recorder: SessionRecorder | None = None) -> None:
        self.conversations = ConversationExecutor(bundle, providers)
        self.evals = EvalExecutor(bundle, providers, self.conversations.tools)
        self.recorder = recorder

    @property
    def providers(self) -> dict[str, Provider]:
        return self.conversations.providers

    @providers.setter
    def providers(self, providers: dict[str, Provider]) -> None:
        """A datagen worker swaps in seeded ones for the scenario runs (judges keep theirs, as before)."""
        self.conversations.providers = providers

    @property
    def run_timeout(self) -> float:
        return self.conversations.run_timeout

    @run_timeout.setter
    def run_timeout(self, seconds: float) -> None:
        self.conversations.run_timeout = seconds
        self.evals.run_timeout = seconds

    async def execute(self, combo: RunCombination) -> RunResult:
        """Never raises: a recording that cannot be written is logged and the run keeps its result without one."""
        if combo.recording:
            return await self.evals.execute(combo)
        result = await self.conversations.execute(combo)
        if self.recorder is not None:
            try:
                result.recording_path = str(await asyncio.to_thread(self.recorder.write, result))
            except (OSError, ValueError) as exc:
                log.warning("run %s: session recording not written: %s", result.run_id, exc)
        return result

    async def aclose(self) -> None:
        await self.conversations.aclose()
