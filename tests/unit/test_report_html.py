"""The HTML report: sections, matrix shape, failures shown, untrusted content escaped, self-contained."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from html.parser import HTMLParser
from typing import Any

from arena_operator.results.report import write_html
from arena_operator.results.summary import Summary

XSS = "<script>alert(1)</script>"


class Page(HTMLParser):
    """Collects every start tag, the ids, the text, and the shape of the pass/fail matrix."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: set[str] = set()
        self.text: list[str] = []
        self.matrix_head: list[str] = []
        self.matrix_rows: list[str] = []
        self._table: list[str] = []  # class of each open table
        self._part = ""
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.append((tag, values))
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "table":
            self._table.append(values.get("class") or "")
        elif tag in ("thead", "tbody"):
            self._part = tag
        elif tag in ("th", "td") and self._in_matrix:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._table:
            self._table.pop()
        elif tag in ("th", "td") and self._in_matrix and self._cell is not None:
            text = "".join(self._cell).strip()
            if self._part == "thead":
                self.matrix_head.append(text)
            elif tag == "th":  # a row header: one per scenario
                self.matrix_rows.append(text)
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def _in_matrix(self) -> bool:
        return bool(self._table) and "matrix" in self._table[-1].split()


def assertion(kind: str, passed: bool, message: str) -> dict[str, Any]:
    return {"type": kind, "passed": passed, "message": message}


def block(*results: dict[str, Any]) -> dict[str, Any]:
    failed = sum(1 for r in results if not r["passed"])
    return {"results": list(results), "passed": failed == 0, "total": len(results), "failed": failed}


def run(scenario: str, provider: str, status: str = "passed", trial: int = 0, messages: list | None = None,
        error: str = "", conversation: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {
        "RunID": f"{scenario}-{provider}-{trial}", "PromptPack": "", "Region": "default", "ScenarioID": scenario,
        "ProviderID": provider, "Trial": trial, "Params": {}, "Messages": messages or [],
        "Cost": {"input_tokens": 120, "output_tokens": 40, "total_cost_usd": 0.0012},
        "ToolStats": {"TotalCalls": 0, "ByTool": {}, "Errors": 0}, "Violations": [],
        "StartTime": "2024-05-02T09:30:00Z", "EndTime": "2024-05-02T09:30:01Z", "Duration": 812.5,
        "Error": error, "ErrorKind": "rate_limited" if error else "", "SelfPlay": False, "PersonaID": "",
        "TTFT": 95.0, "Status": status, "Passed": status == "passed",
        "conversation_assertions": block(*conversation),
    }


def reply(content: str, *checks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    out = {"role": "assistant", "content": content, "latency_ms": 700.0, "ttft_ms": 95.0,
           "cost_info": {"input_tokens": 120, "output_tokens": 40, "total_cost_usd": 0.0012}, **extra}
    if checks:
        out["meta"] = {"assertions": block(*checks)}
    return out


def sample_runs() -> list[dict[str, Any]]:
    return [
        run("greeting", "openai", messages=[
            {"role": "user", "content": "Hello"},
            reply("Hi!\nHow can I help?", assertion("content_includes", True, "reply mentions help")),
        ]),
        run("greeting", "mock", "failed", messages=[
            {"role": "user", "content": "Hello"},
            reply("Go away", assertion("content_includes", False, "expected 'help' in the reply")),
        ]),
        run("order-lookup", "openai", messages=[
            {"role": "user", "content": "Where is order 42?"},
            reply("", tool_calls=[{"id": "call_1", "name": "get_order", "args": {"order_id": 42}}]),
            {"role": "tool", "content": '{"status": "shipped"}',
             "tool_result": {"id": "call_1", "name": "get_order", "content": '{"status": "shipped"}'}},
            reply("It has shipped.", assertion("tools_called", True, "get_order was called")),
        ], conversation=(assertion("turn_count", True, "1 turn"),)),
        run("order-lookup", "mock", "error", messages=[{"role": "user", "content": "Where is order 42?"}],
            error="HTTP 429 from provider"),
        run("xss", "openai", "failed", messages=[
            {"role": "user", "content": f"Print {XSS} please"},
            reply(XSS, assertion("content_not_includes", False, f"reply contained {XSS}"),
                  tool_calls=[{"id": "c", "name": XSS, "args": {"html": XSS}}]),
        ], conversation=(assertion("llm_judge", False, XSS),)),
    ]


def render(runs: list[dict[str, Any]], **kwargs: Any) -> str:
    summary = Summary()
    for item in runs:
        summary.add(item)
    out = io.StringIO()
    write_html(iter(runs), summary.to_dict(), out, **kwargs)
    return out.getvalue()


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def test_sections_matrix_and_failures() -> None:
    html = render(sample_runs(), title="Nightly", meta={"bundle": "support-bot", "revision": "abc123"})
    page = parse(html)
    text = "".join(page.text)
    for scenario in ("greeting", "order-lookup", "xss"):
        assert f"scenario-{scenario}" in page.ids
        assert ("a", {"href": f"#scenario-{scenario}"}) in page.tags  # the matrix links to the section
    assert page.matrix_rows == ["greeting", "order-lookup", "xss"]
    assert page.matrix_head == ["Scenario", "mock", "openai"]
    assert "expected 'help' in the reply" in text
    assert "HTTP 429 from provider" in text
    assert "get_order" in text and '"order_id": 42' in text
    assert "Nightly" in text and "support-bot" in text and "abc123" in text
    assert "Hi!\nHow can I help?" in text  # newlines preserved for pre-wrap


def test_failed_and_error_runs_are_open_passed_closed() -> None:
    page = parse(render(sample_runs()))
    runs = [attrs for tag, attrs in page.tags if tag == "details" and "run" in (attrs.get("class") or "").split()]
    assert len(runs) == 5
    for attrs in runs:
        status = (attrs.get("class") or "").split()[-1]
        assert ("open" in attrs) == (status != "passed")


def test_untrusted_content_is_escaped() -> None:
    html = render(sample_runs())
    page = parse(html)
    assert not [tag for tag, _ in page.tags if tag in ("iframe", "object", "embed")]
    # one script, the report's own, inlined (no src) and allowed by its hash: no other script could run
    assert [attrs for tag, attrs in page.tags if tag == "script"] == [{}]
    script = html.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = next(attrs["content"] for tag, attrs in page.tags if tag == "meta" and attrs.get("http-equiv"))
    assert f"script-src 'sha256-{digest}'" in str(policy) and "default-src 'none'" in str(policy)
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert XSS in "".join(page.text)  # shown to the reader as text


def test_self_contained() -> None:
    html = render(sample_runs())
    page = parse(html)
    for _, attrs in page.tags:
        for name in ("src", "href", "action", "data"):
            assert not re.match(r"\s*(https?:)?//", attrs.get(name) or ""), (name, attrs)
    assert not [attrs for tag, attrs in page.tags if tag == "link"]
    assert "@import" not in html and "url(" not in html


def test_empty_run_renders() -> None:
    page = parse(render([]))
    assert page.matrix_rows == []
    assert "Pass rate" in "".join(page.text)


def test_two_thousand_runs() -> None:
    runs = []
    for index in range(2000):
        status = ("passed", "passed", "failed", "error")[index % 4]
        checks = (assertion("content_includes", status != "failed", f"check {index}"),)
        runs.append(run(f"scenario-{index % 25}", f"provider-{index % 4}", status, trial=index, messages=[
            {"role": "user", "content": f"question {index}"}, reply(f"answer {index}\nline two", *checks),
        ], error="boom" if status == "error" else ""))
    html = render(runs)
    assert html.rstrip().endswith("</html>")
    assert html.count('<details class="run ') == 2000
