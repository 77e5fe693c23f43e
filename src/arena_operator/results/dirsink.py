"""Results in a directory: a PVC mounted in a worker pod, or `arena run`'s `--out` directory. Same layout as S3:
`units/<unit-id>.json` and the report files beside `units/`."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

from .sinkbase import (
    ACCESS_DENIED,
    CLAIM_NOT_MOUNTED,
    READ_FAILED,
    UNITS,
    WRITE_FAILED,
    SinkError,
    file_name,
    object_name,
    ordered_calls,
    parse_unit,
    safe_prefix,
    segment,
    unit_bytes,
    unit_name,
)

# Units read per thread call, and calls in flight: enough to keep the disk busy, few runs in memory at once.
_READ_BATCH = 64
_READ_WINDOW = 4


def _batched(names: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for name in names:
        batch.append(name)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _is_unit(name: str) -> bool:
    return name.endswith(".json") and not name.startswith(".")


class DirSink:
    """Writes are atomic (temp file in place + os.replace), so a reader or a crash never sees half a unit.
    `durable` also fsyncs each file before the rename (a PVC shared by pods); a local run skips that: the rename
    alone survives the process dying, which is what `--resume` needs."""

    def __init__(self, root: Path, claim: str, sub_path: str | None, namespace: str, job: str, *,
                 durable: bool = True) -> None:
        self.root = Path(root)
        self.claim = claim
        relative = f"{safe_prefix(sub_path, 'subPath')}{segment(namespace, 'namespace')}/{segment(job, 'job')}/"
        self.dir = self.root / relative
        self.units = self.dir / UNITS
        self.url = f"pvc://{claim}/{relative}"
        self.durable = durable
        self._local = False
        self._ready = False

    @classmethod
    def at(cls, directory: Path) -> DirSink:
        """A sink whose job root is `directory` itself (`arena run --out DIR`): units in DIR/units/, reports in
        DIR/. Not fsynced (see the class)."""
        sink = cls.__new__(cls)
        sink.root = sink.dir = Path(directory)
        sink.units = sink.dir / UNITS
        sink.claim = str(directory)
        sink.url = f"{directory}/"
        sink.durable = False
        sink._local = True
        sink._ready = False
        return sink

    def unit_path(self, unit_id: str) -> Path:
        return self.units / unit_name(unit_id)

    def _missing(self) -> SinkError:
        if self._local:
            return SinkError(CLAIM_NOT_MOUNTED, f"output directory {self.root} is not a directory")
        return SinkError(CLAIM_NOT_MOUNTED, f"claim {self.claim} is not mounted: {self.root} is not a directory")

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        if not self.root.is_dir():
            raise self._missing()
        self._prepare()
        try:
            fd, probe = tempfile.mkstemp(dir=self.units, prefix=".write-check-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise self._error(exc, "write", self.units) from None

    def _prepare(self) -> None:
        if self._ready:
            return
        if not self.root.is_dir():
            raise self._missing()
        try:
            self.units.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error(exc, "create", self.units) from None
        self._ready = True

    async def put_unit(self, unit_id: str, run: dict[str, Any]) -> None:
        target = self.unit_path(unit_id)
        data = unit_bytes(run)
        await asyncio.to_thread(self._write, target, lambda out: out.write(data))

    async def put_units(self, units: list[tuple[str, dict[str, Any]]]) -> None:
        """Several units in one thread call (a local run writes them as fast as they finish)."""

        def write_all() -> None:
            for unit_id, run in units:
                data = unit_bytes(run)
                self._write(self.unit_path(unit_id), lambda out, data=data: out.write(data))

        await asyncio.to_thread(write_all)

    async def put_file(self, name: str, path: Path, content_type: str) -> None:
        await self._copy_in(self.dir / file_name(name), path)

    async def put_object(self, name: str, path: Path, content_type: str) -> None:
        target = self.dir / object_name(name)
        try:
            await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error(exc, "create", target.parent) from None
        await self._copy_in(target, path)

    async def get_object(self, name: str, dest: Path) -> None:
        source = self.dir / object_name(name)
        try:
            await asyncio.to_thread(shutil.copyfile, source, dest)
        except OSError as exc:
            raise self._error(exc, "read", source) from None

    async def _copy_in(self, target: Path, path: Path) -> None:
        def copy(out: IO[bytes]) -> None:
            with path.open("rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)

        await asyncio.to_thread(self._write, target, copy)

    def _write(self, target: Path, fill: Callable[[IO[bytes]], object]) -> None:
        self._prepare()
        # A temp file beside the target, named at random (pods sharing a volume never collide), then renamed over
        # it. os.open rather than mkstemp: a unit write is a few syscalls, and a local run writes one per run.
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise self._error(exc, "write", target) from None
        try:
            os.fchmod(fd, 0o644)  # whatever the umask: readers of the volume need to read the results
            with os.fdopen(fd, "wb") as out:
                fill(out)
                if self.durable:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(temp, target)
        except OSError as exc:
            with suppress(OSError):
                os.unlink(temp)
            raise self._error(exc, "write", target) from None
        except BaseException:
            with suppress(OSError):
                os.unlink(temp)
            raise

    async def iter_units(self, *, ordered: bool = True) -> AsyncIterator[dict[str, Any]]:
        """In name order (the listing is sorted first, as S3 lists), or with `ordered=False` in the directory's
        own order, streamed without holding the listing: what an aggregation of a million units wants."""
        names: Iterable[str] = await asyncio.to_thread(self._unit_names) if ordered else self._scan()

        async def reads() -> AsyncGenerator[Callable[[], list[dict[str, Any]]], None]:
            for batch in _batched(names, _READ_BATCH):
                yield lambda batch=batch: [self._read_unit(self.units / name) for name in batch]

        async for runs in ordered_calls(reads(), _READ_WINDOW):
            for run in runs:
                yield run

    def _unit_names(self) -> list[str]:
        # Byte order of the (ASCII, percent-encoded) names: the same order as an S3 listing.
        return sorted(self._scan())

    def _scan(self) -> Iterator[str]:
        if not self.root.is_dir():
            raise self._missing()
        try:
            with os.scandir(self.units) as entries:
                for entry in entries:
                    if _is_unit(entry.name):
                        yield entry.name
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._error(exc, "list", self.units) from None

    def _read_unit(self, path: Path) -> dict[str, Any]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise self._error(exc, "read", path) from None
        return parse_unit(data, f"{self.url}{UNITS}{path.name}")

    def _error(self, exc: OSError, op: str, path: Path) -> SinkError:
        if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            reason = ACCESS_DENIED
        else:
            reason = READ_FAILED if op in ("read", "list") else WRITE_FAILED
        where = "" if self._local else f" (claim {self.claim})"
        return SinkError(reason, f"{op} {path}{where}: {exc.strerror or exc}")
