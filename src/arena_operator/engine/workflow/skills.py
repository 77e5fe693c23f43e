"""Skills: SKILL.md files (YAML frontmatter + markdown instructions) the model activates with `skill__activate`,
filtered per workflow state by a path glob. Loaded once per bundle; each run has its own SkillSession (upstream
shares one executor across concurrent runs — here one run's activations never leak into another's)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import BundleProblem, ToolError
from ..manifests import OUTSIDE_BUNDLE, Collector, escapes
from ..types import ToolDefinition
from ..yamlsrc import YamlSyntaxError, line_of, load_yaml_text
from .spec import SkillSource

SKILL_FILE = "SKILL.md"
MAX_SKILLS = 500
MAX_SKILL_FILE_BYTES = 256 * 1024
MAX_RESOURCE_BYTES = 256 * 1024
MAX_NAME = 64
MAX_DESCRIPTION = 1024
NAME_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
ACTIVATE, DEACTIVATE, READ_RESOURCE = "skill__activate", "skill__deactivate", "skill__read_resource"
NONE_FILTER = "none"


@dataclass(slots=True)
class Skill:
    name: str
    description: str
    instructions: str
    allowed_tools: list[str] = field(default_factory=list)
    path: str = ""  # the skill's directory relative to the arena file's, which state filters match
    directory: Path | None = None  # None for an inline skill
    preload: bool = False


def _go_match(pattern: str, path: str) -> bool:
    """Go's filepath.Match: `*` and `?` never cross a `/`, so a glob matches segment by segment."""
    pattern_parts, path_parts = PurePosixPath(pattern).parts, PurePosixPath(path).parts
    return len(pattern_parts) == len(path_parts) and all(
        fnmatchcase(p, g) for g, p in zip(pattern_parts, path_parts, strict=True))


def visible(skill: Skill, state_filter: str) -> bool:
    """A state's `skills:` — empty: every skill; `none`: no skill; else a glob over the skill's path."""
    if not state_filter:
        return True
    if state_filter.lower() == NONE_FILTER:
        return False
    return bool(skill.path) and _go_match(state_filter, skill.path)


def split_frontmatter(text: str) -> tuple[str, str, int]:
    """(frontmatter, body, the line the frontmatter starts on). Raises ValueError as upstream words it."""
    stripped = text.lstrip()
    offset = text[: len(text) - len(stripped)].count("\n")
    if not stripped:
        raise ValueError("empty skill file")
    if not stripped.startswith("---"):
        raise ValueError("missing frontmatter: the file must start with ---")
    lines = stripped.split("\n")
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            return "\n".join(lines[1:index]), "\n".join(lines[index + 1:]).strip(), offset + 2
    raise ValueError("missing closing frontmatter delimiter ---")


class SkillRegistry:
    """Every skill of a bundle, by name; the first declaration of a name wins, a later `preload` upgrades it."""

    def __init__(self) -> None:
        self.skills: dict[str, Skill] = {}

    @classmethod
    def load(cls, sources: list[SkillSource], base: Path, root: Path, arena_file: str, doc: Any,
             out: Collector) -> SkillRegistry:
        registry = cls()
        for index, source in enumerate(sources):
            where = ["spec", "skills", index]
            if source.directory:
                registry._discover(source, base, root, arena_file, doc, [*where, "dir" if source.dir else "path"],
                                   out)
            elif source.name:
                if problem := _metadata_problem(source.name, source.description):
                    out.add(arena_file, doc, [*where, "name"], problem)
                    continue
                registry._add(Skill(source.name, source.description, source.instructions, preload=source.preload))
            else:
                out.add(arena_file, doc, where, "a skill source needs a path (a directory of SKILL.md files) or "
                                                "a name, description and instructions")
        return registry

    def _add(self, skill: Skill) -> None:
        known = self.skills.get(skill.name)
        if known is None:
            self.skills[skill.name] = skill
        elif skill.preload:
            known.preload = True

    def _discover(self, source: SkillSource, base: Path, root: Path, arena_file: str, doc: Any,
                  where: list[Any], out: Collector) -> None:
        relative = (base / source.directory).relative_to(root) if (base / source.directory).is_relative_to(root) \
            else None
        if relative is None or escapes(root, str(relative)):
            out.add(arena_file, doc, where, f"skill directory {source.directory!r} {OUTSIDE_BUNDLE}")
            return
        directory = root / relative
        if not directory.is_dir():
            out.add(arena_file, doc, where, f"skill directory {source.directory!r} does not exist")
            return
        for current, dirs, files in os.walk(directory):
            dirs.sort()
            if SKILL_FILE not in files:
                continue
            if len(self.skills) >= MAX_SKILLS:
                out.add(arena_file, doc, where, f"more than {MAX_SKILLS} skills")
                return
            path = Path(current) / SKILL_FILE
            if escapes(root, str(path.relative_to(root))):
                out.add(out.rel(path), None, [], f"skill file {OUTSIDE_BUNDLE}")
                continue
            skill = _parse_skill_file(path, out)
            if skill is not None:
                skill.path = PurePosixPath(os.path.relpath(current, base)).as_posix()
                skill.directory, skill.preload = Path(current), source.preload
                self._add(skill)

    def preloaded(self) -> list[Skill]:
        return sorted((s for s in self.skills.values() if s.preload), key=lambda s: s.name)

    def index(self) -> str:
        if not self.skills:
            return "No skills available."
        lines = [f"- {s.name}: {s.description}" for s in sorted(self.skills.values(), key=lambda s: s.name)]
        return "Available skills:\n" + "\n".join(lines)

    def definitions(self) -> list[ToolDefinition]:
        """The three skill tools upstream registers whenever a bundle has skills."""
        name_only = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
        return [
            ToolDefinition(ACTIVATE, "Activate a skill to load its instructions and tools.\n\n" + self.index(),
                           {**name_only, "properties": {"name": {"type": "string",
                                                                 "description": "Name of the skill to activate."}}}),
            ToolDefinition(DEACTIVATE, "Deactivate a skill to unload its instructions and tools.", name_only),
            ToolDefinition(READ_RESOURCE, "Read a resource file from within a skill's directory.",
                           {"type": "object", "properties": {"skill_name": {"type": "string"},
                                                             "path": {"type": "string"}},
                            "required": ["skill_name", "path"]}),
        ]


def _metadata_problem(name: str, description: str) -> str | None:
    if not name:
        return "skill name is required"
    if len(name) > MAX_NAME or not NAME_PATTERN.match(name):
        return f"invalid skill name {name!r}: kebab-case (lowercase letters, digits, hyphens), at most {MAX_NAME}"
    if not description:
        return "skill description is required"
    if len(description) > MAX_DESCRIPTION:
        return f"skill description exceeds {MAX_DESCRIPTION} characters"
    return None


def _parse_skill_file(path: Path, out: Collector) -> Skill | None:
    file = out.rel(path)
    try:
        if path.stat().st_size > MAX_SKILL_FILE_BYTES:
            out.add(file, None, [], f"skill file larger than {MAX_SKILL_FILE_BYTES} bytes")
            return None
        text = path.read_text(encoding="utf-8")
        front, body, first_line = split_frontmatter(text)
        meta = load_yaml_text(front) if front.strip() else {}
    except YamlSyntaxError as exc:
        out.problems.append(BundleProblem(file, exc.line + first_line - 1, "", f"invalid frontmatter: {exc}"))
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        out.add(file, None, [], str(exc))
        return None
    if not isinstance(meta, dict):
        out.add(file, None, [], "frontmatter must be a mapping")
        return None
    name, description = str(meta.get("name") or ""), str(meta.get("description") or "")
    if problem := _metadata_problem(name, description):
        line = line_of(meta, ["name" if "name" in problem else "description"])
        out.problems.append(BundleProblem(file, line + first_line - 1 if line else 0, "", problem))
        return None
    tools = meta.get("allowed-tools") or []
    return Skill(name, description, body, [str(t) for t in tools] if isinstance(tools, list) else [])


class SkillSession:
    """One run's active skills and the current state's filter."""

    def __init__(self, registry: SkillRegistry, pack_tools: set[str]) -> None:
        self.registry = registry
        self.pack_tools = pack_tools
        self.filter = ""
        self.active: dict[str, Skill] = {}
        self.activations: list[str] = []
        for skill in registry.preloaded():
            self.active[skill.name] = skill

    def _tools_of(self, skill: Skill) -> list[str]:
        """A skill adds only tools the bundle declares (upstream's pack ceiling)."""
        return sorted(t for t in skill.allowed_tools if t in self.pack_tools)

    def active_tools(self) -> set[str]:
        return {t for skill in self.active.values() for t in self._tools_of(skill)}

    def set_filter(self, state_filter: str) -> None:
        """Entering a state narrows the skills: active ones it does not allow are deactivated (as upstream)."""
        self.filter = state_filter
        self.active = {n: s for n, s in self.active.items() if visible(s, state_filter)}

    def execute(self, name: str, args: dict[str, Any]) -> str:
        """A skill tool's JSON result; raises ToolError, which the model sees."""
        if name == ACTIVATE:
            return json.dumps(self._activate(str(args.get("name") or "")))
        if name == DEACTIVATE:
            skill_name = str(args.get("name") or "")
            skill = self.active.pop(skill_name, None)
            if skill is None:
                raise ToolError(f"skill {skill_name!r} is not active")
            return json.dumps({"removed_tools": sorted(set(self._tools_of(skill)) - self.active_tools())})
        return json.dumps({"content": self._read_resource(str(args.get("skill_name") or ""),
                                                          str(args.get("path") or ""))})

    def _activate(self, name: str) -> dict[str, Any]:
        skill = self.registry.skills.get(name)
        if skill is None:
            raise ToolError(f"activating skill {name!r}: skill {name!r} not found")
        if name not in self.active and not visible(skill, self.filter):
            raise ToolError(f"skill {name!r} is not available in the current state (filter: {self.filter!r})")
        self.active[name] = skill
        self.activations.append(name)
        return {"instructions": skill.instructions, "added_tools": self._tools_of(skill)}

    def _read_resource(self, name: str, resource: str) -> str:
        skill = self.registry.skills.get(name)
        if skill is None:
            raise ToolError(f"skill {name!r} not found")
        if skill.directory is None:
            raise ToolError(f"skill {name!r} is inline and has no directory")
        base = skill.directory.resolve()
        target = (base / resource).resolve()
        if not target.is_relative_to(base) or not target.is_file():
            raise ToolError(f"resource {resource!r} is not a file inside skill {name!r}")
        with target.open("rb") as handle:
            data = handle.read(MAX_RESOURCE_BYTES + 1)
        if len(data) > MAX_RESOURCE_BYTES:
            raise ToolError(f"resource {resource!r} is larger than {MAX_RESOURCE_BYTES} bytes")
        return data.decode("utf-8", errors="replace")

    def preload_block(self) -> str:
        """Preloaded skills' instructions, appended to every system prompt whatever the state's filter (upstream's
        wording)."""
        preloaded = self.registry.preloaded()
        if not preloaded:
            return ""
        parts = ["\n\n# Active Skills\n\nThe following skills are active for this conversation. "
                 "Follow their instructions.\n"]
        parts += [f"\n## {s.name}\n\n{s.instructions}\n" for s in preloaded]
        return "".join(parts)
