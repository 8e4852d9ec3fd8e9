"""The API reference lists every public name: a name in a public module's ``__all__`` without a
``::: path`` entry in ``docs/reference/`` fails here, and so does an entry that names nothing."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

import wechat_kf

ROOT = Path(__file__).resolve().parent.parent.parent
REFERENCE = ROOT / "docs" / "reference"
#: Public modules that are programs, not APIs: the command line (its own page) and the demo.
NOT_API = ("wechat_kf.cli", "wechat_kf.demo")


def public_modules() -> list[str]:
    """Every module of the package whose dotted name has no ``_`` part, programs aside."""
    names = ["wechat_kf"]
    for info in pkgutil.walk_packages(wechat_kf.__path__, "wechat_kf."):
        parts = info.name.split(".")
        if any(part.startswith("_") for part in parts):
            continue
        if any(info.name == skip or info.name.startswith(skip + ".") for skip in NOT_API):
            continue
        names.append(info.name)
    return sorted(names)


def documented() -> list[str]:
    """Every ``::: path`` of the reference pages."""
    paths = []
    for page in sorted(REFERENCE.glob("*.md")):
        paths += re.findall(r"^::: ([\w.]+)$", page.read_text(encoding="utf-8"), re.M)
    return paths


def resolve(path: str) -> object:
    """The object a reference path names (the longest importable module, then attributes)."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            target = getattr(target, name)
        return target
    raise ImportError(path)


def test_the_reference_covers_the_public_modules() -> None:
    modules = public_modules()
    assert {"wechat_kf", "wechat_kf.callback", "wechat_kf.testing"} <= set(modules)
    assert "wechat_kf.callback.starlette" in modules
    assert "wechat_kf.callback.aiohttp" in modules


def test_every_entry_names_an_object() -> None:
    entries = documented()
    assert len(entries) > 100
    for path in entries:
        resolve(path)
    assert len(entries) == len(set(entries)), "a name is documented twice"


@pytest.mark.parametrize("name", public_modules())
def test_every_public_name_has_a_reference_entry(name: str) -> None:
    module: ModuleType = importlib.import_module(name)
    entries = documented()
    public = getattr(module, "__all__", None)
    if public is None:  # a module of fixtures or helpers: documented as a whole
        assert name in entries, f"{name} has no __all__: document it as a whole (::: {name})"
        return
    by_name: dict[str, list[object]] = {}
    for path in entries:
        by_name.setdefault(path.rpartition(".")[2], []).append(resolve(path))
    missing = [
        item
        for item in module.__all__
        if not any(obj is getattr(module, item) for obj in by_name.get(item, []))
    ]
    assert missing == [], f"no ::: entry in docs/reference/ for {name}.{{{', '.join(missing)}}}"
