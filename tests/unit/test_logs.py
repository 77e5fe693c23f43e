"""JSON logs carry the structured fields workers attach (job, unit, revision)."""

from __future__ import annotations

import json
import logging

import pytest

from arena_operator.logs import setup_logging


def test_json_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        setup_logging("json", "INFO")
        logging.getLogger("arena.worker").info("unit %s passed", "u1", extra={"job": "j", "unit": "u1",
                                                                             "revision": "main@sha1:abc"})
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "unit u1 passed" and line["level"] == "INFO"
    assert (line["job"], line["unit"], line["revision"]) == ("j", "u1", "main@sha1:abc")
