"""Sort any number of runs in bounded memory: an external merge sort of their JSON lines.

Runs are added with their sort key; every `batch` runs (or `batch_bytes` of lines) the batch is sorted and spilled
to a chunk file, and `merged()` streams every run in order by merging the chunks (and the last, unspilled batch).
Memory is one batch plus one line per chunk; disk is about the size of the lines."""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

# (ScenarioID, ProviderID, Region, Trial, RunID): the report order of a local run and a distributed job alike.
Key = tuple[str, str, str, int, str]
Item = tuple[Key, bytes]

SORT_BATCH = 10_000
SORT_BATCH_BYTES = 32 << 20
MERGE_FANIN = 64  # chunk files open at once; more are first merged into bigger chunks


def _trial(run: dict[str, Any]) -> int:
    try:
        return int(run.get("Trial") or 0)
    except (TypeError, ValueError):
        return 0


def sort_key(run: dict[str, Any]) -> Key:
    return (str(run.get("ScenarioID", "")), str(run.get("ProviderID", "")), str(run.get("Region", "")),
            _trial(run), str(run.get("RunID", "")))


def _read_chunk(path: Path) -> Iterator[Item]:
    # Each record: the key as a JSON array, a tab (never inside JSON text), the run's line.
    with path.open("rb") as handle:
        for record in handle:
            prefix, _, line = record.partition(b"\t")
            scenario, provider, region, trial, run_id = json.loads(prefix)
            yield (scenario, provider, region, trial, run_id), line


def _write_chunk(path: Path, items: Iterator[Item] | list[Item]) -> None:
    with path.open("wb") as out:
        for key, line in items:
            out.write(json.dumps(key).encode())
            out.write(b"\t")
            out.write(line)


class ExternalSort:
    """Items are (key, line), ordered by key then line bytes, so the order never depends on arrival order."""

    def __init__(self, work: Path, batch: int = SORT_BATCH, batch_bytes: int = SORT_BATCH_BYTES) -> None:
        self.work = work
        self.batch, self.batch_bytes = max(1, batch), batch_bytes
        self.count = 0
        self._items: list[Item] = []
        self._bytes = 0
        self._chunks: list[Path] = []
        self._made = 0

    def add(self, key: Key, line: bytes) -> bool:
        """Keep one run; True when the batch is full and `spill()` is due."""
        self._items.append((key, line))
        self._bytes += len(line)
        self.count += 1
        return len(self._items) >= self.batch or self._bytes >= self.batch_bytes

    def spill(self) -> None:
        """Blocking: sort the batch into a new chunk file."""
        if not self._items:
            return
        self._items.sort()
        self._chunks.append(self._new_chunk(self._items))
        self._items, self._bytes = [], 0
        while len(self._chunks) > MERGE_FANIN:
            group, self._chunks = self._chunks[:MERGE_FANIN], self._chunks[MERGE_FANIN:]
            with ExitStack() as files:
                merged = heapq.merge(*(files.enter_context(closing(_read_chunk(p))) for p in group))
                self._chunks.insert(0, self._new_chunk(merged))
            for path in group:
                path.unlink()

    def _new_chunk(self, items: Iterator[Item] | list[Item]) -> Path:
        path = self.work / f"chunk-{self._made:06d}"
        self._made += 1
        _write_chunk(path, items)
        return path

    def merged(self) -> Iterator[Item]:
        """Every item in order (blocking reads); call once, after the last `add`."""
        self._items.sort()
        with ExitStack() as files:
            sources = [files.enter_context(closing(_read_chunk(p))) for p in self._chunks]
            yield from heapq.merge(*sources, iter(self._items))
        self._items = []

