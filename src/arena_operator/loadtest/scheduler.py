"""The load drivers of one worker, on its asyncio loop.

Open model: each arrival of this worker's share is started at its due time, whatever earlier runs are doing —
the driver never waits for a run. An arrival that finds the in-flight cap full is counted as dropped, not
delayed (k6's constant-arrival-rate semantics; no coordinated omission: a slow server shows up as dropped
arrivals and higher latency, never as a lower offered rate). The lag between an arrival's due time and its
start is measured (scheduling lag). Closed model: this worker's virtual users run scenarios back to back.

Every 0.25 s the roster is refreshed (the share follows workers joining and leaving), every second the
measurements are pushed and the stop flag (budget, cancel) and the spend are checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..engine.plan import RunCombination
from ..engine.result import RunResult
from .coord import PUSH_S, REFRESH_S, Coordinator
from .metrics import Recorder
from .profile import LoadProfile
from .roster import Roster, next_arrival

log = logging.getLogger("arena.loadtest")
BUDGET_EXCEEDED = "BudgetExceeded"
LONG_SLEEP_S = 0.25  # a far arrival is waited for in steps, so that a roster change or a stop is seen meanwhile
VU_CONTROL_S = 0.1


@dataclass(frozen=True)
class MixEntry:
    """One scenario × provider × region the load cycles through."""

    region: str
    scenario: str
    provider: str

    def run(self, iteration: int) -> RunCombination:
        return RunCombination(self.region, self.scenario, self.provider, iteration)


class LoadRunner:
    """Runs this worker's share of a load test; ``execute`` is the engine (ConversationExecutor.execute)."""

    def __init__(self, profile: LoadProfile, mix: list[MixEntry], execute: Callable[[RunCombination],
                 Awaitable[RunResult]], coordinator: Coordinator, recorder: Recorder,
                 on_tick: Callable[[], None] | None = None) -> None:
        self.profile, self.mix, self.execute = profile, mix, execute
        self.coord, self.recorder, self.on_tick = coordinator, recorder, on_tick
        self.loop = asyncio.get_running_loop()
        self.origin = self.loop.time()
        self.roster = Roster.of((0.0, (coordinator.worker,)))
        self.roster_version = 0
        self.inflight: set[asyncio.Task[None]] = set()
        self.stop_event = asyncio.Event()
        self.stop_reason: dict[str, object] | None = None
        self.spend = 0.0  # over all workers, as of the last push
        self._cost_at_push = 0.0

    def now(self) -> float:
        """Test time in seconds."""
        return self.loop.time() - self.origin

    async def run(self) -> None:
        """Join, drive the load until the test is over (or stopped), let runs in flight finish, push the rest."""
        self.origin = await self.coord.join()
        self.recorder.clock = self.now
        self._set_roster(await self.coord.refresh())
        control = asyncio.create_task(self._control())
        how = "finished"
        try:
            await self._wait_until(0.0)
            await (self._drive_open() if self.profile.model == "open" else self._drive_closed())
            self.recorder.ended = max(0.0, self.now())
            await self._drain(0.0 if self.stop_reason else self.profile.graceful_stop)
        except asyncio.CancelledError:
            how = "stopped"  # SIGTERM (scale-down, cancel): the others take over this worker's share at once
            self.recorder.ended = self.recorder.ended or max(0.0, self.now())
            await self._drain(0.0)
            raise
        finally:
            control.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await control
            await self.coord.push(self.recorder, final=True)
            await self.coord.leave(how)

    # --- control ------------------------------------------------------------------------------------------------

    def _set_roster(self, roster: Roster) -> None:
        if roster != self.roster:
            self.roster, self.roster_version = roster, self.roster_version + 1

    async def _control(self) -> None:
        pushed = self.loop.time()
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                self._set_roster(await self.coord.refresh())
                if self.loop.time() - pushed >= PUSH_S:
                    pushed = self.loop.time()
                    await self._push()
            except Exception as exc:  # Redis unreachable for a moment: keep the load going, retry next time
                log.warning("load test coordination failed (retrying): %s: %s", type(exc).__name__, exc)

    async def _push(self) -> None:
        self._cost_at_push = self.recorder.total.cost_usd
        self.spend = await self.coord.push(self.recorder)
        if self.on_tick:
            self.on_tick()
        await self._check_budget()
        reason = await self.coord.stopped()
        if reason is not None:
            self._stop(reason)

    async def _check_budget(self) -> None:
        """Spend over all workers (as of the last push, plus this worker's since) against the budget."""
        limit = self.profile.budget_limit
        spent = self.spend + self.recorder.total.cost_usd - self._cost_at_push
        if limit is not None and spent >= limit and self.stop_reason is None:
            message = (f"spend {spent:.4f} {self.profile.budget_currency} reached loadTest.budgetLimit "
                       f"{limit:g} at {self.now():.1f}s")
            self._stop({"reason": BUDGET_EXCEEDED, "message": message, "at": round(self.now(), 3)})
            await self.coord.stop(BUDGET_EXCEEDED, message)

    def _stop(self, reason: dict[str, object]) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_event.set()
            if reason.get("reason") == BUDGET_EXCEEDED:  # stop spending now: in-flight runs are interrupted
                for task in list(self.inflight):
                    task.cancel()

    async def _wait_until(self, t: float) -> bool:
        """Sleep until test time ``t`` (in steps); False when the test was stopped meanwhile."""
        while not self.stop_event.is_set():
            delay = t - self.now()
            if delay <= 0:
                return True
            await asyncio.sleep(min(delay, LONG_SLEEP_S))
        return False

    # --- runs ---------------------------------------------------------------------------------------------------

    def _start(self, entry: MixEntry, iteration: int) -> asyncio.Task[None]:
        task = asyncio.create_task(self._one(entry, iteration))
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)
        return task

    async def _one(self, entry: MixEntry, iteration: int) -> None:
        try:
            result = await self.execute(entry.run(iteration))
        except asyncio.CancelledError:
            self.recorder.run_done("interrupted")
            raise
        self.recorder.run_done(result.status)
        if self.profile.budget_limit is not None:
            await self._check_budget()

    async def _drain(self, timeout: float) -> None:
        if self.inflight:
            _, pending = await asyncio.wait(set(self.inflight), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # --- drivers ------------------------------------------------------------------------------------------------

    async def _drive_open(self) -> None:
        curve, me, last = self.profile.curve(), self.coord.worker, -1
        while not self.stop_event.is_set():
            version = self.roster_version
            found = next_arrival(curve, self.roster, me, last)
            if found is None:
                if me in self.roster.workers or self.now() >= curve.end:
                    return
                await asyncio.sleep(LONG_SLEEP_S)  # not (yet) in the roster: wait to be given a share
                continue
            k, due = found
            while (delay := due - self.now()) > 0 and version == self.roster_version:
                if delay > LONG_SLEEP_S:
                    if not await self._wait_until(self.now() + LONG_SLEEP_S):
                        return
                else:
                    await asyncio.sleep(delay)
            if version != self.roster_version:
                continue  # the shares changed before this arrival was due: find this worker's next one again
            if self.stop_event.is_set():
                return
            last = k
            index, count = self.roster.position(me, due) or (0, 1)
            started = len(self.inflight) < self.profile.in_flight_cap(index, count)
            self.recorder.arrival(started, self.now() - due)
            if started:
                self._start(self.mix[k % len(self.mix)], k)

    async def _drive_closed(self) -> None:
        users: list[asyncio.Task[None]] = []
        retiring: set[asyncio.Task[None]] = set()
        exhausted = asyncio.Event()
        counter = iter(range(10**12))
        ending = asyncio.Event()  # the test time is over: users finish their current run and stop

        async def user() -> None:
            me = asyncio.current_task()
            while not (self.stop_event.is_set() or ending.is_set()) and me not in retiring:
                limit = self.profile.iterations
                k = await self.coord.claim_iteration(limit) if limit else next(counter)
                if k is None:
                    exhausted.set()
                    return
                self.recorder.arrival(True, None)
                await self._one(self.mix[k % len(self.mix)], k)

        while not self.stop_event.is_set() and self.now() < self.profile.duration:
            users = [u for u in users if not u.done()]
            if exhausted.is_set() and not users:
                break
            place = self.roster.position(self.coord.worker, self.now())
            wanted, capped = self.profile.vus_for(self.now(), *place) if place and not exhausted.is_set() else (0, 0)
            active = [u for u in users if u not in retiring]
            for _ in range(wanted - len(active)):
                task = asyncio.create_task(user())
                users.append(task)
                self.inflight.add(task)  # drained at the end like the open model's runs (or cancelled)
                task.add_done_callback(self.inflight.discard)
            for extra in active[wanted:]:
                retiring.add(extra)  # ramping down: it ends after its current run
            self.recorder.gauge(min(wanted, len(users)), capped)
            await asyncio.sleep(VU_CONTROL_S)
        ending.set()
