"""Go (RE2) regular expressions on Python's `re`: bundles written for upstream match the same text here.

The differences that matter for assertion patterns: Go's `$` without the `m` flag matches only at the very end
(Python's also before a final newline, and mock replies written as YAML block scalars end with one), Go spells
end-of-text `\\z`, and Go allows a flag group such as `(?i)` anywhere, applying to the rest of the pattern.
"""

from __future__ import annotations

import re
from functools import lru_cache

_FLAG_GROUP = re.compile(r"\(\?([imsU]+)\)")


def _translate(pattern: str, multiline: bool = False) -> str:
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append("\\Z" if nxt == "z" and not in_class else ch + nxt)
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
            out.append(ch)
        elif ch == "[":
            in_class = True
            out.append(ch)
            if pattern[i + 1 : i + 2] == "]":  # a literal ] first in the class
                out.append("]")
                i += 1
        elif ch == "(" and (flags := _FLAG_GROUP.match(pattern, i)):
            letters = flags.group(1).replace("U", "")
            rest = _translate(pattern[flags.end():], multiline or "m" in letters)
            out.append(f"(?{letters}:{rest})" if letters else rest)
            return "".join(out)
        elif ch == "$" and not multiline:
            out.append(r"\Z")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


@lru_cache(maxsize=512)
def compile_go(pattern: str) -> re.Pattern[str]:
    """Compile a Go regex; raises re.error (as Go's regexp.Compile would fail) for an invalid one."""
    return re.compile(_translate(pattern))


def go_search(pattern: str, value: str) -> bool:
    return compile_go(pattern).search(value) is not None
