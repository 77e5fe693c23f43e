"""junit.xml, streamed: one <testsuite> per scenario, one <testcase> per run, valid against the Ant JUnit schema.

Runs arrive sorted by scenario, so each suite's cases are contiguous. A suite's header carries its counts, known
only after its last case: the cases go to a scratch file as they come, with a few numbers per suite kept in
memory, and `close()` writes the document — headers around the scratch file's byte ranges."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from .formats import failures
from .packeval_rows import run_lines

PACK_EVAL_LINES = 1000  # pack eval lines kept per suite for its system-out


@dataclass
class _Suite:
    name: str
    start: int
    end: int = 0
    tests: int = 0
    errors: int = 0
    failed: int = 0
    seconds: float = 0.0
    timestamp: str = ""
    out: list[str] = field(default_factory=list)  # pack eval results: observations, not failures


def _testcase(run: dict[str, Any], failed: list[dict[str, Any]]) -> str:
    name = f"{run.get('ProviderID')}"
    if run.get("Region") not in (None, "", "default"):
        name += f" [{run.get('Region')}]"
    name += f" trial {run.get('Trial', 0)}"
    seconds = float(run.get("Duration") or 0) / 1000
    head = (f"    <testcase classname={quoteattr(str(run.get('ScenarioID')))} name={quoteattr(name)} "
            f'time="{seconds:.3f}"')
    if run.get("Error"):
        message = str(run["Error"])
        kind = str(run.get("ErrorKind") or "error")
        return f"{head}>\n      <error message={quoteattr(message)} type={quoteattr(kind)}/>\n    </testcase>\n"
    if failed:
        text = "\n".join(f"{f.get('type')}: {f.get('message')}" for f in failed)
        first = str(failed[0].get("message", "assertion failed"))
        return (f"{head}>\n      <failure message={quoteattr(first)} type=\"AssertionFailed\">"
                f"{xml_escape(text)}</failure>\n    </testcase>\n")
    return f"{head}/>\n"


class JunitWriter:
    def __init__(self, path: Path, scratch: Path, name: str = "arena") -> None:
        self.path, self.name = path, name
        self._scratch_path = scratch
        self._cases: IO[bytes] = scratch.open("w+b")
        self._suites: list[_Suite] = []

    def add(self, run: dict[str, Any], line: bytes) -> None:
        scenario = str(run.get("ScenarioID", ""))
        if not self._suites or self._suites[-1].name != scenario:
            self._end_suite()
            self._suites.append(_Suite(scenario, self._cases.tell()))
        suite = self._suites[-1]
        failed = failures(run)
        self._cases.write(_testcase(run, failed).encode())
        suite.tests += 1
        suite.errors += bool(run.get("Error"))
        suite.failed += bool(not run.get("Error") and failed)
        suite.seconds += float(run.get("Duration") or 0)
        suite.out.extend(run_lines(run, PACK_EVAL_LINES - len(suite.out)))
        # JUnit wants a local-style timestamp without zone: the earliest start of the suite's runs (UTC).
        start = str(run.get("StartTime") or "")[:19]
        if start and (not suite.timestamp or start < suite.timestamp):
            suite.timestamp = start

    def _end_suite(self) -> None:
        if self._suites:
            self._suites[-1].end = self._cases.tell()

    def close(self) -> None:
        self._end_suite()
        self._cases.flush()
        tests = sum(s.tests for s in self._suites)
        errors = sum(s.errors for s in self._suites)
        failed = sum(s.failed for s in self._suites)
        seconds = sum(s.seconds / 1000 for s in self._suites)
        self._cases.seek(0)
        with self.path.open("wb") as out:
            out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
            out.write(f"<testsuites name={quoteattr(self.name)} tests=\"{tests}\" errors=\"{errors}\" "
                      f"failures=\"{failed}\" time=\"{seconds:.3f}\">\n".encode())
            for index, suite in enumerate(self._suites):
                out.write(f"  <testsuite name={quoteattr(suite.name)} package=\"arena\" id=\"{index}\" "
                          f"timestamp=\"{suite.timestamp or '1970-01-01T00:00:00'}\" hostname=\"localhost\" "
                          f"tests=\"{suite.tests}\" failures=\"{suite.failed}\" errors=\"{suite.errors}\" "
                          f"skipped=\"0\" time=\"{suite.seconds / 1000:.3f}\">\n    <properties/>\n".encode())
                _copy(self._cases, out, suite.end - suite.start)  # the suites tile the scratch file, in order
                text = xml_escape("\n".join(suite.out))
                out.write((f"    <system-out>{text}</system-out>\n" if text else "    <system-out/>\n").encode())
                out.write(b"    <system-err/>\n  </testsuite>\n")
            out.write(b"</testsuites>\n")
        self._cases.close()
        self._scratch_path.unlink()


def _copy(source: IO[bytes], out: IO[bytes], length: int) -> None:
    while length > 0:
        chunk = source.read(min(length, 1 << 20))
        if not chunk:
            raise OSError(f"junit scratch file ended {length} bytes early")
        out.write(chunk)
        length -= len(chunk)
