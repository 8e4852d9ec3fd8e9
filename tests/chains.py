"""Everything an exception chain shows or keeps, as text: for "no secret anywhere" assertions.

A user's error reporter may print the traceback, ``repr`` every exception in the chain, read
``args``, ``__notes__`` and attributes (aiohttp's ``request_info``, httpx's ``request``), or walk
``__cause__``/``__context__`` and exception groups. :func:`chain_texts` does all of it, following
attributes into the objects they hold (a few levels deep).
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterable, Mapping

__all__ = ["assert_no_secret", "chain_exceptions", "chain_texts"]

_DEPTH = 5
_PROPERTIES = ("request", "response", "request_info")


def chain_exceptions(error: BaseException) -> list[BaseException]:
    """Every exception reachable from ``error``: causes, contexts, group members."""
    found: list[BaseException] = []
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        exc = stack.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        found.append(exc)
        stack += [exc.__cause__, exc.__context__]
        stack += list(getattr(exc, "exceptions", ()) or ())
        stack += [value for _, value in _attributes(exc) if isinstance(value, BaseException)]
    return found


def chain_texts(error: BaseException) -> list[str]:
    """The traceback of ``error`` and the texts of everything its chain holds."""
    texts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    for exc in chain_exceptions(error):
        texts += [type(exc).__name__, str(exc), repr(exc)]
        texts += [repr(note) for note in getattr(exc, "__notes__", ())]
        _walk(exc.args, texts, seen, 0)
        for _, value in _attributes(exc):
            _walk(value, texts, seen, 0)
    return texts


def assert_no_secret(error: BaseException, secrets: Iterable[str]) -> None:
    """Fail if any of ``secrets`` appears anywhere in ``error``'s chain."""
    texts = chain_texts(error)
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"secret {secret[:6]}... in {text[:300]!r}"


def _attributes(obj: object) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    with contextlib.suppress(TypeError):  # no __dict__
        found += list(vars(obj).items())
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if isinstance(name, str) and hasattr(obj, name):
                found.append((name, getattr(obj, name)))
    if isinstance(obj, BaseException):
        for name in _PROPERTIES:
            try:
                value = getattr(obj, name)
            except Exception:  # httpx raises RuntimeError when no request is attached
                continue
            found.append((name, value))
    return found


def _walk(value: object, texts: list[str], seen: set[int], depth: int) -> None:
    if isinstance(value, str):
        texts.append(value)
        return
    if isinstance(value, bytes | bytearray):
        texts.append(bytes(value).decode("latin-1"))
        return
    if value is None or isinstance(value, bool | int | float) or depth > _DEPTH:
        return
    if id(value) in seen:
        return
    seen.add(id(value))
    try:
        texts.append(repr(value))
        texts.append(str(value))
    except Exception:
        pass
    if isinstance(value, Mapping):
        for key, item in list(value.items()):
            _walk(key, texts, seen, depth + 1)
            _walk(item, texts, seen, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in list(value):
            _walk(item, texts, seen, depth + 1)
    elif not isinstance(value, BaseException) and not callable(value):
        for _, item in _attributes(value):
            _walk(item, texts, seen, depth + 1)
