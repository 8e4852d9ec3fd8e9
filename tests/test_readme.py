"""Every ```python block of the README runs, in order, against the fake WeChat.

Blocks marked ```py are signatures, not examples, and are skipped. ``wx`` (an AsyncWeChat on the
fake) and ``fake`` are predefined; ``AsyncWeChat("wx...", "secret")`` with real-looking
credentials is pointed at the fake too. The blocks run in an empty directory holding
``shop.jpg``, a picture. A line ``print(...)  # text`` promises what it prints:
the test checks it prints exactly ``text``.
"""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path
from typing import Any

import pytest

import wechat_kf
from wechat_kf.testing import FakeWeChat, sample_media

pytestmark = pytest.mark.anyio

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
#: ``print(args)  # what it prints``
PRINT_WITH_OUTPUT = re.compile(r"^(?P<indent>\s*)print\((?P<args>.*)\)  # (?P<expected>.+)$", re.M)


def checked_prints(block: str, number: int) -> str:
    """``block`` with each ``print(...)  # output`` turned into a check of that output."""

    def check(match: re.Match[str]) -> str:
        where = f"README block {number}: {match.group(0).strip()}"
        expected = match.group("expected")
        return f"{match['indent']}__printed__({where!r}, {expected!r}, {match['args']})"

    return PRINT_WITH_OUTPUT.sub(check, block)


def printed(where: str, expected: str, *values: object) -> None:
    shown = " ".join(str(value) for value in values)
    assert shown == expected, f"{where} prints {shown!r}"


def test_readme_promises_what_it_prints() -> None:
    promised = [m for block in BLOCKS for m in PRINT_WITH_OUTPUT.finditer(block)]
    assert len(promised) >= 5  # and each one is checked when the blocks run
    assert "print(repr(online[0].status))  # <OnlineStatus.WEB: 1>" in [m[0] for m in promised]


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 8


async def test_readme_examples_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shop.jpg").write_bytes(sample_media("image"))
    fake = FakeWeChat()
    fake.user_says("o_user_openid")
    real = wechat_kf.AsyncWeChat

    def to_fake(appid: str, secret: str, **kwargs: Any) -> wechat_kf.AsyncWeChat:
        if kwargs.get("base_url"):  # the example already targets a fake server
            return real(appid, secret, **kwargs)
        return fake.client(**kwargs)

    monkeypatch.setattr(wechat_kf, "AsyncWeChat", to_fake)
    async with fake.client() as wx:
        namespace: dict[str, Any] = {"fake": fake, "__name__": "readme", "__printed__": printed}
        for number, block in enumerate(BLOCKS, 1):
            namespace["wx"] = wx
            code = compile(
                checked_prints(block, number),
                f"README block {number}",
                "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            )
            result = eval(code, namespace)
            if isinstance(result, types.CoroutineType):
                await result
