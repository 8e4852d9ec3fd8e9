"""A griffe extension: the docstrings' Sphinx roles become Markdown for the API reference.

Our docstrings are written for IDEs and ``help()`` (``:class:`AsyncWeChat```, ``Example::``).
mkdocstrings renders Markdown, so each role becomes a cross-reference when it names an object
the reference pages document (a ``::: path`` line in ``docs/reference/*.md``), and inline code
otherwise; a reST ``::`` that opens a literal block becomes ``:``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe

REFERENCE = Path(__file__).resolve().parent.parent / "reference"
ROLE = re.compile(r":(?:class|meth|func|attr|mod|exc|data|obj):`(~?)([\w.]+)(?:\(\))?`")
LITERAL_BLOCK = re.compile(r"(?<=\S)::$", re.M)


def documented() -> dict[str, str]:
    """Every documented path, and its last name when that is unambiguous: path -> path."""
    paths = set()
    for page in REFERENCE.glob("*.md"):
        paths.update(re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.M))
    targets = {path: path for path in paths}
    by_name: dict[str, set[str]] = {}
    for path in paths:
        by_name.setdefault(path.rpartition(".")[2], set()).add(path)
    for name, where in by_name.items():
        if len(where) == 1:
            targets.setdefault(name, next(iter(where)))
    return targets


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring of the loaded package (see the module docstring)."""

    def __init__(self) -> None:
        self.targets = documented()

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._rewrite(pkg, set())

    def _rewrite(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            text = ROLE.sub(self._role, obj.docstring.value)
            obj.docstring.value = LITERAL_BLOCK.sub(":", text)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member, seen)  # type: ignore[arg-type]

    def _role(self, match: re.Match[str]) -> str:
        short, path = match.group(1), match.group(2)
        shown = path.rpartition(".")[2] if short else path
        candidates = [path, path.rpartition(".")[2]]
        if not path.startswith("wechat_kf"):  # Class.member: the class
            candidates.append(path.partition(".")[0])
        for candidate in candidates:
            target = self.targets.get(candidate)
            if target is not None:
                return f"[`{shown}`][{target}]"
        return f"`{shown}`"
