"""One generated item: its record (what the data files hold) and its normalised content hash (what dedupe keys on).

The hash covers the conversation only — every message but the system prompt, in order: its role, its text
normalised (Unicode NFKC, case-folded, runs of whitespace made one space, trimmed) and the tool calls it makes
(name and arguments) — not the scenario, provider, seed, timing or cost. Two items that say the same thing
modulo case and spacing are duplicates, wherever and by whichever worker they were generated."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any

_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def conversation(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages of a RunResult dict as an item keeps them: role and content, tool calls and tool results by
    name; no latency, cost or assertion details."""
    out: list[dict[str, Any]] = []
    for message in run.get("Messages") or []:
        role = str(message.get("role", ""))
        if role == "system":
            continue
        entry: dict[str, Any] = {"role": role, "content": str(message.get("content") or "")}
        if message.get("tool_calls"):
            entry["tool_calls"] = [{"name": c.get("name"), "args": c.get("args") or {}}
                                   for c in message["tool_calls"]]
        if role == "tool" and message.get("tool_result"):
            entry["name"] = message["tool_result"].get("name")
        out.append(entry)
    return out


def content_hash(messages: list[dict[str, Any]]) -> str:
    """128 bits of sha256 over the normalised conversation, hex."""
    canonical = [[m["role"], normalise(m["content"]),
                  [[c["name"], json.dumps(c["args"], sort_keys=True)] for c in m.get("tool_calls") or []]]
                 for m in messages]
    data = json.dumps(canonical, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:32]


def tokens_of(run: dict[str, Any]) -> tuple[int, int, float]:
    """(input tokens, output tokens, cost in USD) of a RunResult dict."""
    cost = run.get("Cost") or {}
    return int(cost.get("input_tokens") or 0), int(cost.get("output_tokens") or 0), \
        float(cost.get("total_cost_usd") or 0.0)


def item_record(run: dict[str, Any], messages: list[dict[str, Any]], *, index: int, seed: int, digest: str,
                shard: str, revision: str) -> dict[str, Any]:
    """What a data file holds for one item (keys in this order)."""
    input_tokens, output_tokens, cost = tokens_of(run)
    return {
        "index": index, "scenario": run.get("ScenarioID"), "provider": run.get("ProviderID"),
        "region": run.get("Region"), "persona": run.get("PersonaID") or None, "seed": seed,
        "messages": messages, "tokens": {"input": input_tokens, "output": output_tokens},
        "costUSD": round(cost, 8), "revision": revision, "shard": shard, "hash": digest,
    }


def item_line(item: dict[str, Any]) -> str:
    """The item as one compact JSON line (no newline), the form of shard files and data.jsonl."""
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"))
