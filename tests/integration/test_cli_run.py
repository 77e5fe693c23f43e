"""`arena run` and `arena validate` as a user runs them: the real CLI in a subprocess."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import xmlschema

REPO = Path(__file__).resolve().parents[2]
QUICKSTART_SCENARIOS = {"greeting", "order-status", "refund-policy", "frustrated-customer",
                        "competitor-question", "escalation"}


def arena(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arena_operator.cli", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=120, check=False)


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.ids.update(v for k, v in attrs if k == "id" and v)


def test_quickstart_writes_every_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = arena("run", "examples/quickstart", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "Results by provider" in done.stdout
    runs = json.loads((out / "results.json").read_text())
    assert {r["ScenarioID"] for r in runs} == QUICKSTART_SCENARIOS
    by_scenario = {r["ScenarioID"]: r for r in runs}
    # the one intentional failure, explained in the README
    assert [s for s, r in by_scenario.items() if r["Status"] != "passed"] == ["escalation"]
    assert "ticket number" in json.dumps(by_scenario["escalation"]["Messages"])
    assert by_scenario["order-status"]["ToolStats"]["ByTool"] == {"lookup_order": 1}
    assert by_scenario["frustrated-customer"]["SelfPlay"] is True
    lines = (out / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["RunID"] for line in lines) == sorted(r["RunID"] for r in runs)

    schema = xmlschema.XMLSchema(str(REPO / "tests/fixtures/junit.xsd"))
    schema.validate(str(out / "junit.xml"))
    junit = (out / "junit.xml").read_text()
    assert 'tests="6"' in junit and 'failures="1"' in junit and "escalations must give a ticket number" in junit

    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and {r["Status"] for r in rows} == {"passed", "failed"}

    parser = _Ids()
    parser.feed((out / "report.html").read_text())
    assert {f"scenario-{s}" for s in QUICKSTART_SCENARIOS} <= parser.ids
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == 6 and summary["passed"] == 5 and summary["failed"] == 1


def test_ci_flag_sets_exit_code(tmp_path: Path) -> None:
    failing = arena("run", "examples/quickstart", "--ci", "-q", "--out", str(tmp_path / "a"))
    assert failing.returncode == 1
    passing = arena("run", "examples/quickstart", "--ci", "-q", "--scenario", "greeting,order-*",
                    "--out", str(tmp_path / "b"))
    assert passing.returncode == 0, passing.stdout
    assert len(json.loads((tmp_path / "b" / "results.json").read_text())) == 2


def test_formats_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = arena("run", "-c", "examples/quickstart", "--formats", "json", "--scenario", "greeting",
                  "--trials", "3", "-q", "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "results.json", "results.jsonl", "summary.json",
                                                     "units"]
    assert len(list((out / "units").glob("*.json"))) == 3
    resumed = arena("run", "examples/quickstart", "--resume", "--trials", "3", "-q", "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "3 resumed" in resumed.stdout
    runs = json.loads((out / "results.json").read_text())
    assert len(runs) == 18 and len({r["RunID"] for r in runs}) == 18


def test_bad_input_exits_2_with_file_and_line(tmp_path: Path) -> None:
    """`arena run` exits 2 on an invalid bundle; `arena validate` 1 (upstream's code for "invalid")."""
    bundle = tmp_path / "bundle"
    subprocess.run(["cp", "-r", str(REPO / "examples/quickstart"), str(bundle)], check=True)
    scenario = bundle / "scenarios" / "greeting.yaml"
    scenario.write_text(scenario.read_text().replace("type: contains", "type: contians"))
    for command, code in ((("validate", str(bundle)), 1), (("run", str(bundle), "--out", str(tmp_path / "o")), 2)):
        done = arena(*command)
        assert done.returncode == code
        assert ("scenarios/greeting.yaml:12:11: turns[0].assertions[0].type: unknown assertion 'contians' "
                "(did you mean 'contains'?)") in done.stderr
    assert arena("run", "examples/quickstart", "--formats", "pdf").returncode == 2
    assert arena("run", "examples/quickstart", "-j", "0").returncode == 2
    assert arena("validate", "examples/quickstart").returncode == 0


def test_mock_provider_flag_replaces_real_providers(tmp_path: Path) -> None:
    env_bundle = tmp_path / "b"
    subprocess.run(["cp", "-r", str(REPO / "examples/quickstart"), str(env_bundle)], check=True)
    for name in ("assistant", "judge", "customer"):
        path = env_bundle / "providers" / f"{name}.yaml"
        path.write_text(path.read_text().replace("${ARENA_PROVIDER:-mock}", "openai"))
    done = arena("run", str(env_bundle), "--mock-provider", "-q", "--out", str(tmp_path / "o"))
    assert done.returncode == 0, done.stdout
    runs = json.loads((tmp_path / "o" / "results.json").read_text())
    assert sum(r["Status"] == "passed" for r in runs) == 5


def test_large_local_run_bounds_the_html_report(tmp_path: Path) -> None:
    done = arena("run", "examples/quickstart", "--trials", "25", "-q", "--formats", "json",
                 "--out", str(tmp_path / "o"))
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "o" / "report.html").read_text()
    # 5 passing scenarios × 20 shown + all 25 failures of `escalation`, of 150 runs; every run stays in the JSON
    assert "showing 125 of 150 runs" in html
    assert len(json.loads((tmp_path / "o" / "results.json").read_text())) == 150
