"""The merged file `data.<format>`, written one item at a time (nothing but the open file is held):

- `jsonl`: one item per line, the item record as in the shard files;
- `json`: one array of the same records;
- `csv`: one row per item (RFC 4180, header row), the conversation flattened into columns:

  | column | value |
  |---|---|
  | index, scenario, provider, region, persona, seed, revision, hash | the item's fields (persona empty without one) |
  | turns | the number of messages |
  | prompt | the first user message |
  | response | the last assistant message |
  | conversation | every message as `role: content`, one per line; a tool call as `[tool name {args}]` after |
  |              | the assistant's text, a tool result as `tool name: content` |
  | input_tokens, output_tokens, cost_usd | the tokens and cost of the item's generation |
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO, Any, Protocol

FORMATS = ("jsonl", "json", "csv")
CONTENT_TYPES = {"jsonl": "application/x-ndjson", "json": "application/json", "csv": "text/csv; charset=utf-8"}
CSV_COLUMNS = ("index", "scenario", "provider", "region", "persona", "seed", "revision", "hash", "turns", "prompt",
               "response", "conversation", "input_tokens", "output_tokens", "cost_usd")
SHARD_CONTENT_TYPE = CONTENT_TYPES["jsonl"]


def data_file(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown datagen format {fmt!r}; choose from {', '.join(FORMATS)}")
    return f"data.{fmt}"


class ItemWriter(Protocol):
    def add(self, item: dict[str, Any], line: str) -> None: ...

    def close(self) -> None: ...


class JsonlItems:
    def __init__(self, path: Path) -> None:
        self._out: IO[str] = path.open("w", encoding="utf-8", newline="\n")

    def add(self, item: dict[str, Any], line: str) -> None:
        self._out.write(line + "\n")

    def close(self) -> None:
        self._out.close()


class JsonItems:
    """`[`, the lines separated by `,\\n`, `]`: a JSON array without building it."""

    def __init__(self, path: Path) -> None:
        self._out: IO[str] = path.open("w", encoding="utf-8", newline="\n")
        self._out.write("[")
        self._first = True

    def add(self, item: dict[str, Any], line: str) -> None:
        self._out.write(("\n" if self._first else ",\n") + line)
        self._first = False

    def close(self) -> None:
        self._out.write("\n]\n")
        self._out.close()


def _said(message: dict[str, Any]) -> str:
    role, content = message.get("role", ""), message.get("content") or ""
    if role == "tool":
        return f"tool {message.get('name') or ''}: {content}"
    calls = " ".join(f"[tool {c.get('name')} {json.dumps(c.get('args') or {}, sort_keys=True)}]"
                     for c in message.get("tool_calls") or [])
    return f"{role}: {content}" + (f" {calls}" if calls and content else calls)


def csv_row(item: dict[str, Any]) -> list[Any]:
    messages = item.get("messages") or []
    prompt = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
    response = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "assistant"), "")
    tokens = item.get("tokens") or {}
    return [item.get("index"), item.get("scenario"), item.get("provider"), item.get("region"),
            item.get("persona") or "", item.get("seed"), item.get("revision"), item.get("hash"), len(messages),
            prompt, response, "\n".join(_said(m) for m in messages), tokens.get("input", 0),
            tokens.get("output", 0), item.get("costUSD", 0.0)]


class CsvItems:
    def __init__(self, path: Path) -> None:
        self._out: IO[str] = path.open("w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._out)
        self._writer.writerow(CSV_COLUMNS)

    def add(self, item: dict[str, Any], line: str) -> None:
        self._writer.writerow(csv_row(item))

    def close(self) -> None:
        self._out.close()


WRITERS: dict[str, type[JsonlItems] | type[JsonItems] | type[CsvItems]] = {
    "jsonl": JsonlItems, "json": JsonItems, "csv": CsvItems}


def open_writer(fmt: str, path: Path) -> ItemWriter:
    data_file(fmt)
    return WRITERS[fmt](path)
