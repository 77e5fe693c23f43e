"""`arena run --resume`: reuse a finished run only while everything that decides it is unchanged.

Every run's input hash (local/inputs.py) is recorded as its result is written, in `units/.inputs.sqlite` (a
dotfile: no sink lists it as a unit; it goes with `units/` when a run starts afresh), with the table of part
hashes of the session that wrote it. Resuming, each run of the plan whose unit is on disk is
- reused when its recorded hash equals its hash now and it did not error;
- rerun otherwise (its unit deleted first, so a crash can never leave an old result under a new record), and the
  terminal says why: which parts changed since (`3 runs rerun: prompt prompts/support.yaml changed`), that it
  errored (an infrastructure error is not a result), or that no record of its inputs exists (written by an
  arena version before this log, or lost to a crash just after the unit was written).
Units of runs the plan no longer has are removed, so the reports equal those of a fresh run of the same plan.
Lookups go through sqlite, not a dict of every run: memory stays bounded for a million runs."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.plan import RunCombination
from ..results.sinkbase import unit_name
from .inputs import InputHasher

LOG = ".inputs.sqlite"
BATCH = 256  # records per commit: a crash loses at most these (their runs rerun)
SHOWN_LABELS = 3
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, hash TEXT NOT NULL, session INTEGER NOT NULL,
                                 errored INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS parts (session INTEGER NOT NULL, label TEXT NOT NULL, hash TEXT NOT NULL,
                                  PRIMARY KEY (session, label));
CREATE TEMP TABLE planned (id TEXT PRIMARY KEY);
"""


@dataclass
class ResumeReport:
    """What a resume decided, for the terminal."""

    reused: int = 0
    rerun: Counter[str] = field(default_factory=Counter)  # why → runs
    removed: int = 0  # units of runs no longer in the plan

    def lines(self) -> list[str]:
        out = [f"resume: {self.reused} finished run{'s' if self.reused != 1 else ''} reused"]
        for why, count in sorted(self.rerun.items(), key=lambda item: (-item[1], item[0])):
            out.append(f"{count} run{'s' if count != 1 else ''} rerun: {why}")
        if self.removed:
            out.append(f"{self.removed} earlier run{'s' if self.removed != 1 else ''} not in this plan removed "
                       "from units/")
        return out


def changed(labels: list[str]) -> str:
    shown = labels[:SHOWN_LABELS]
    more = len(labels) - len(shown)
    text = ", ".join(shown[:-1]) + (" and " if len(shown) > 1 else "") + shown[-1]
    return f"{text}{f' and {more} more' if more else ''} changed"


class InputLog:
    """The record of each finished run's inputs (see the module docstring)."""

    def __init__(self, units: Path, hasher: InputHasher) -> None:
        units.mkdir(parents=True, exist_ok=True)
        self.units, self.hasher = units, hasher
        self.db = sqlite3.connect(units / LOG, check_same_thread=False)  # the plan pass runs in a thread
        # A lost record only costs a rerun: no fsync per commit (WAL keeps the file consistent through a crash).
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self.session = (self.db.execute("SELECT MAX(session) FROM parts").fetchone()[0] or 0) + 1
        self._pending: list[tuple[str, str, int, int]] = []
        self._tables: dict[int, dict[str, str]] = {}

    def prepare(self, plan: Iterable[RunCombination], resume: bool) -> ResumeReport:
        """Hash every run of the plan; resuming, delete the units that are not reusable (module docstring)."""
        report = ResumeReport()
        batch: list[tuple[str]] = []
        for combo in plan:
            run_hash = self.hasher.run_hash(combo)
            if not resume:
                continue
            batch.append((combo.run_id,))
            if len(batch) >= BATCH * 16:
                self.db.executemany("INSERT OR IGNORE INTO planned VALUES (?)", batch)
                batch = []
            path = self.units / unit_name(combo.run_id)
            if not path.exists():
                continue
            why = self._why_rerun(combo, run_hash)
            if why is None:
                report.reused += 1
            else:
                report.rerun[why] += 1
                path.unlink(missing_ok=True)
        self.db.executemany("INSERT OR IGNORE INTO planned VALUES (?)", batch)
        self.db.executemany("INSERT OR REPLACE INTO parts VALUES (?, ?, ?)",
                            [(self.session, label, value) for label, value in self.hasher.table.items()])
        self.db.commit()
        if resume:
            report.removed = self._remove_unplanned()
        return report

    def _why_rerun(self, combo: RunCombination, run_hash: str) -> str | None:
        row = self.db.execute("SELECT hash, session, errored FROM runs WHERE id = ?", (combo.run_id,)).fetchone()
        if row is None:
            return "no record of their inputs (written before arena kept one, or just before a crash)"
        old_hash, session, errored = row
        if old_hash != run_hash:
            old = self._table(session)
            labels = [label for label, value in self.hasher.parts(combo).items() if old.get(label) != value]
            return changed(labels) if labels else "their inputs changed"
        return "they errored last time" if errored else None

    def _table(self, session: int) -> dict[str, str]:
        if session not in self._tables:
            rows = self.db.execute("SELECT label, hash FROM parts WHERE session = ?", (session,))
            self._tables[session] = dict(rows.fetchall())
        return self._tables[session]

    def _remove_unplanned(self) -> int:
        removed = 0
        for entry in self.units.iterdir():
            if entry.name.startswith(".") or not entry.name.endswith(".json"):
                continue
            run_id = entry.name.removesuffix(".json")
            if self.db.execute("SELECT 1 FROM planned WHERE id = ?", (run_id,)).fetchone() is None:
                entry.unlink(missing_ok=True)
                removed += 1
        return removed

    def record(self, combo: RunCombination, run: dict[str, Any]) -> None:
        """A finished run's inputs (committed in batches; see BATCH)."""
        errored = int(run.get("Status") == "error")
        self._pending.append((combo.run_id, self.hasher.run_hash(combo), self.session, errored))
        if len(self._pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.db.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)", self._pending)
            self.db.commit()
            self._pending = []

    def close(self) -> None:
        self.flush()
        self.db.close()
