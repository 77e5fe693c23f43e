"""YAML loading that remembers line numbers, so every bundle error can name its file and line.

Bundle files are untrusted input, so loading is bounded before anything is built from them: the file's size,
the nesting depth and the number of nodes the document expands to once every alias is followed (a "billion
laughs" file of a few hundred bytes expands to 10⁹ strings; PyYAML shares the anchored object, but everything
that walks or validates the result pays the full expansion). A NUL or another control character is a syntax
error with its line, like any other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# The cluster admin may relax them (the operator's and the workers' environment); a bundle cannot.
MAX_YAML_BYTES = int(os.environ.get("ARENA_MAX_YAML_BYTES", 8 * 1024 * 1024))
MAX_YAML_NODES = int(os.environ.get("ARENA_MAX_YAML_NODES", 1_000_000))  # values once aliases are expanded
MAX_YAML_DEPTH = int(os.environ.get("ARENA_MAX_YAML_DEPTH", 100))


class LineDict(dict):
    """A mapping that knows the line and column of each of its keys (1-based)."""

    line: int = 0
    column: int = 0
    key_lines: dict[Any, int]
    key_columns: dict[Any, int]


class LineList(list):
    """A sequence that knows the line and column of each of its items (1-based)."""

    line: int = 0
    column: int = 0
    item_lines: list[int]
    item_columns: list[int]


class YamlSyntaxError(ValueError):
    """A file that is not valid YAML, or too big to be read; carries the 1-based line and column of the problem."""

    def __init__(self, message: str, line: int, column: int = 0) -> None:
        super().__init__(message)
        self.line, self.column = line, column


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def check_expansion(root: yaml.Node) -> None:
    """Raise YamlSyntaxError when `root` nests deeper than MAX_YAML_DEPTH or expands (aliases followed) to more
    than MAX_YAML_NODES nodes. Iterative, and linear in the distinct nodes: a shared node is sized once."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            children = [c for c in _children(node) if id(c) in size]  # a recursive alias is left to the constructor
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            mark = node.start_mark
            if depth[key] > MAX_YAML_DEPTH:
                raise YamlSyntaxError(f"nesting deeper than {MAX_YAML_DEPTH} levels", mark.line + 1, mark.column + 1)
            if size[key] > MAX_YAML_NODES:
                raise YamlSyntaxError(f"the document expands to more than {MAX_YAML_NODES:,} values once its "
                                      "aliases (*name) are followed (an alias bomb?)", mark.line + 1, mark.column + 1)
        elif key not in size and key not in depth:
            depth[key] = 0  # in progress
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in depth)


class _LineLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    def construct_document(self, node: yaml.Node) -> Any:
        check_expansion(node)
        return super().construct_document(node)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line, result.column = node.start_mark.line + 1, node.start_mark.column + 1
    result.key_lines, result.key_columns = {}, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
        result.key_columns[key] = key_node.start_mark.column + 1
    return result


def _construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line, result.column = node.start_mark.line + 1, node.start_mark.column + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    result.item_columns = [child.start_mark.column + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _syntax_error(exc: yaml.YAMLError, text: str) -> YamlSyntaxError:
    if isinstance(exc, yaml.reader.ReaderError):  # a NUL or another control character: no mark, a position
        before = text[:exc.position]
        line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        code = ord(exc.character) if isinstance(exc.character, str) else int(exc.character)
        return YamlSyntaxError(f"invalid YAML: character {code:#06x} is not allowed (control characters such as "
                               "NUL cannot appear in YAML)", line, column)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    return YamlSyntaxError(f"invalid YAML: {getattr(exc, 'problem', None) or exc}", line, column)


def load_yaml_text(text: str) -> Any:
    """Parse one YAML document, keeping line numbers on every mapping and sequence."""
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text) from None


def load_yaml_documents(text: str) -> list[Any]:
    """Every document of a multi-document stream (`---`), each with line numbers like load_yaml_text."""
    try:
        return list(yaml.load_all(text, Loader=_LineLoader))
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text) from None


def load_yaml_file(path: Path) -> Any:
    """One bounded YAML document from a file (see the module docstring); YamlSyntaxError names line and column."""
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise YamlSyntaxError(f"the file is {size:,} bytes; a bundle file may be at most {MAX_YAML_BYTES:,}", 0)
    return load_yaml_text(path.read_text(encoding="utf-8"))


def position_of(root: Any, path: Sequence[str | int]) -> tuple[int, int]:
    """(line, column) of the deepest element of `path` that exists in `root` ((0, 0) when unknown): a key's
    position for a mapping entry, the item's for a list entry."""
    where = (getattr(root, "line", 0), getattr(root, "column", 0))
    node = root
    for step in path:
        if isinstance(node, LineDict) and step in node:
            where = (node.key_lines.get(step, where[0]), node.key_columns.get(step, where[1]))
            node = node[step]
        elif isinstance(node, LineList) and isinstance(step, int) and 0 <= step < len(node):
            where = (node.item_lines[step], node.item_columns[step])
            node = node[step]
        else:
            break
    return where


def line_of(root: Any, path: Sequence[str | int]) -> int:
    """The line of the deepest element of `path` that exists in `root` (0 when unknown)."""
    return position_of(root, path)[0]


def format_path(path: Sequence[str | int]) -> str:
    """Render a field path the way users write it: `turns[2].assertions[0].type`."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else str(step)
    return out
