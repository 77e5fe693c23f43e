"""Eval manifests (kind: Eval, listed under `spec.evals`, or inline under `spec.eval_specs`): a recorded
conversation and the assertions to apply to it — upstream's arenaconfig.Eval. Loaded and checked with the bundle:
the recording must be a file of the bundle (its path is relative to the eval file, as upstream; a glob gives one
run per matching file) that reads as a recording (engine/recordings.py); every problem names file:line."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from .checks import check_assertions, warn_unknown_keys
from .errors import BundleProblem
from .manifests import OUTSIDE_BUNDLE, Collector, escapes, read_manifest, validate_model
from .recordings import TYPE_ALIASES, RecordingError, canonical_type, read_conversations
from .spec import ArenaSpec, AssertionSpec, Model

INLINE_KEY = "eval_specs"  # upstream: inline Evals in the arena file, id → spec
REF_SEPARATOR = "#"  # a run's recording: `<bundle-relative path>#<conversation index in that file>`
MAX_RECORDINGS_PER_EVAL = 10_000
GLOB_CHARS = "*?["


class RecordingSource(Model):
    path: str
    type: str | None = None


class AllTurns(Model):
    assertions: list[AssertionSpec] = Field(default_factory=list)


class EvalTurn(Model):
    all_turns: AllTurns | None = None


class EvalSpec(Model):
    id: str | None = None
    description: str = ""
    recording: RecordingSource | None = None
    turns: list[EvalTurn] = Field(default_factory=list)
    conversation_assertions: list[AssertionSpec] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    mode: Literal["instant", "realtime", "accelerated"] | None = None
    speed: float | None = None

    @property
    def turn_assertions(self) -> list[AssertionSpec]:
        """Upstream applies every `all_turns` block's assertions to every recorded assistant message."""
        return [a for turn in self.turns if turn.all_turns for a in turn.all_turns.assertions]


@dataclass
class EvalEntry:
    """A loaded eval: its spec, the file it is in, and the recordings its runs replay (see REF_SEPARATOR)."""

    id: str
    spec: EvalSpec
    file: str
    recordings: list[str] = field(default_factory=list)


def split_ref(ref: str) -> tuple[str, int]:
    """`recordings/a.json#2` → (`recordings/a.json`, 2)."""
    path, _, index = ref.rpartition(REF_SEPARATOR)
    return path, int(index)


def load_evals(root: Path, arena: ArenaSpec, arena_file: str, arena_doc: Any,
               out: Collector) -> tuple[dict[str, Any], dict[str, EvalEntry]]:
    """(raw specs by id, loaded evals by id). The raw specs are what the bundle keeps in `evals` (hashed by
    `--resume`); an eval without a recording loads with a warning and plans no run (upstream fails it when run)."""
    raw_by_id: dict[str, Any] = {}
    entries: dict[str, EvalEntry] = {}
    found: list[tuple[str, Any, Any, list[str | int], Path]] = []  # file, doc, raw spec, where, base directory
    for index, ref in enumerate(arena.evals):
        if escapes(root, ref.file):
            out.add(arena_file, arena_doc, ["spec", "evals", index, "file"], f"{ref.file}: Eval file {OUTSIDE_BUNDLE}")
            continue
        read = read_manifest(root / ref.file, "Eval", out)
        if read is not None:
            found.append((out.rel(root / ref.file), read[0], read[1], ["spec"], (root / ref.file).parent))
    inline = (arena.model_extra or {}).get(INLINE_KEY) or {}
    if not isinstance(inline, dict):
        out.add(arena_file, arena_doc, ["spec", INLINE_KEY], "must be a mapping of eval id → eval spec")
        inline = {}
    for eval_id, raw in inline.items():
        found.append((arena_file, arena_doc, raw, ["spec", INLINE_KEY, eval_id], root))
    for file, doc, raw, where, base in found:
        spec = validate_model(EvalSpec, raw, file, doc, where, out)
        if spec is None:
            continue
        eval_id = _eval_id(spec, doc, where, file)
        if eval_id in entries:
            out.add(file, doc, [*where, "id"], f"duplicate eval id {eval_id!r} (also defined in "
                                               f"{entries[eval_id].file})")
            continue
        for index, turn in enumerate(spec.turns):
            if turn.all_turns:
                check_assertions(turn.all_turns.assertions, file, doc,
                                 [*where, "turns", index, "all_turns", "assertions"], out)
        check_assertions(spec.conversation_assertions, file, doc, [*where, "conversation_assertions"], out)
        warn_unknown_keys(spec, file, doc, where, out)  # upstream's Eval reads none of them
        if spec.recording is not None:
            warn_unknown_keys(spec.recording, file, doc, [*where, "recording"], out)
        raw_by_id[eval_id] = raw
        entry = EvalEntry(eval_id, spec, file)
        entries[eval_id] = entry
        if spec.recording is None:
            out.warn(file, doc, where, "no recording: this eval has nothing to replay and plans no run")
            continue
        entry.recordings = _recordings(root, base, spec.recording, file, doc, [*where, "recording"], out)
    return raw_by_id, entries


def _eval_id(spec: EvalSpec, doc: Any, where: list[str | int], file: str) -> str:
    """As upstream: the spec's `id` (inline: its key), else metadata.name, else the file's stem."""
    if len(where) > 1:
        return str(where[-1])
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return spec.id or (str(name) if name else Path(file).name.split(".")[0])


def _recordings(root: Path, base: Path, source: RecordingSource, file: str, doc: Any,
                where: list[str | int], out: Collector) -> list[str]:
    """The bundle-relative refs of every conversation the source names, each file read once to check it."""
    if source.type is not None and canonical_type(source.type) is None:
        out.add(file, doc, [*where, "type"], f"unknown recording type {source.type!r}; one of "
                                             f"{', '.join(sorted(set(TYPE_ALIASES)))}")
        return []
    relative = _relative_to_root(root, base, source.path)
    if relative is None:
        out.add(file, doc, [*where, "path"], f"recording {source.path!r} {OUTSIDE_BUNDLE}")
        return []
    if any(c in relative for c in GLOB_CHARS):
        matches = sorted(out.rel(Path(p)) for p in glob.glob(str(root / relative), recursive=False))
        outside = [m for m in matches if escapes(root, m)]
        if outside:
            out.add(file, doc, [*where, "path"], f"recording {outside[0]!r} {OUTSIDE_BUNDLE}")
            return []
        if not matches:
            out.add(file, doc, [*where, "path"], f"no recording matches {source.path!r}")
            return []
        if len(matches) > MAX_RECORDINGS_PER_EVAL:
            out.add(file, doc, [*where, "path"], f"{source.path!r} matches {len(matches)} files; at most "
                                                 f"{MAX_RECORDINGS_PER_EVAL}")
            return []
    else:
        if not (root / relative).is_file():
            out.add(file, doc, [*where, "path"], f"recording {source.path!r} not found (looked for {relative})")
            return []
        matches = [relative]
    refs: list[str] = []
    for match in matches:
        try:
            conversations = read_conversations(root / match, match, source.type)
        except RecordingError as exc:
            out.problems.append(BundleProblem(exc.file, exc.line, "", exc.message))
            continue
        refs.extend(f"{match}{REF_SEPARATOR}{i}" for i in range(len(conversations)))
    return refs


def _relative_to_root(root: Path, base: Path, path: str) -> str | None:
    """`path` (relative to the eval file's directory) as a path relative to the bundle root, or None when it is
    absolute or leads out of the bundle (checked before the file's existence, so it cannot probe the host)."""
    if not path or Path(path).is_absolute():
        return None
    resolved_root = root.resolve()
    target = Path(_normalise(base.resolve() / path))
    if not target.is_relative_to(resolved_root):
        return None
    relative = str(target.relative_to(resolved_root))
    if not any(c in path for c in GLOB_CHARS) and escapes(root, relative):  # a symlink leading out
        return None
    return relative


def _normalise(path: Path) -> str:
    """`a/b/../c/*.json` → `a/c/*.json` without touching the file system (a glob cannot be resolved)."""
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return str(Path(*parts))

