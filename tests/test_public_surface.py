"""What a user's IDE shows: every public name resolves, one name per concept, no private advice."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import wechat_kf
import wechat_kf.callback
import wechat_kf.testing
from wechat_kf import OperCode, RetryPolicy

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_MODULES = ["wechat_kf", "wechat_kf.callback", "wechat_kf.testing", "wechat_kf.bulk"]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_name_in_all_resolves(name: str) -> None:
    module = importlib.import_module(name)
    missing = [item for item in module.__all__ if not hasattr(module, item)]
    assert missing == []
    assert sorted(module.__all__) == sorted(set(module.__all__))


def test_optional_redis_stores_are_public_names() -> None:
    assert "RedisTokenStore" in wechat_kf.__all__
    assert "RedisWindowStore" in wechat_kf.__all__
    assert "RedisDuplicateStore" in wechat_kf.callback.__all__
    assert "new_fence" in wechat_kf.__all__
    assert "RetryPolicy" in wechat_kf.__all__
    assert RetryPolicy().max_retries == 2


def run_without_redis(code: str) -> str:
    """Run ``code`` in a fresh interpreter where ``import redis`` fails."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys\nsys.modules['redis'] = None\n" + code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


def test_without_redis_py_the_sdk_imports_and_the_redis_stores_say_what_to_install() -> None:
    out = run_without_redis(
        "import wechat_kf, wechat_kf.callback, wechat_kf.testing\n"
        "from wechat_kf import *\n"
        "from wechat_kf.callback import *\n"
        "for build in (lambda: wechat_kf.RedisTokenStore(object()),\n"
        "              lambda: wechat_kf.callback.RedisDuplicateStore(object()),\n"
        "              lambda: wechat_kf.RedisTokenStore.from_url('redis://x')):\n"
        "    try:\n"
        "        build()\n"
        "    except ImportError as exc:\n"
        "        print('ImportError:', exc)\n"
    )
    lines = out.splitlines()
    assert len(lines) == 3
    assert all(
        line.startswith("ImportError: ") and "pip install 'wechat_kf[redis]'" in line
        for line in lines
    )


def test_testing_speaks_the_sdks_opercode_vocabulary() -> None:
    fake = wechat_kf.testing.FakeWeChat()
    fake.add_agent("a@gh", online=True)
    fake.user_says("o_1", "hi", queue=True)
    fake.agent_accepts("a@gh", "o_1")
    codes = [OperCode(record.opercode) for record in fake.records]
    assert [code.name for code in codes] == [
        "ACCOUNT_RECEIVED_MESSAGE",
        "SESSION_CREATED_UNACCEPTED",
        "SESSION_ACCEPTED",
    ]
    assert not hasattr(wechat_kf.testing._state, "Opercode")


def test_old_testing_names_still_work_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match=r"use wechat_kf\.OperCode \(QUEUED is SESSION_"):
        assert wechat_kf.testing.Opercode is OperCode
    with pytest.warns(DeprecationWarning, match=r"use wechat_kf\.testing\.FakeReply"):
        assert wechat_kf.testing.Reply is wechat_kf.testing.FakeReply
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from wechat_kf.testing import FakeReply  # the new name: no warning

    assert FakeReply is not wechat_kf.callback.Reply
    assert "Reply" not in wechat_kf.testing.__all__
    assert "Opercode" not in wechat_kf.testing.__all__


def test_the_readme_and_the_guides_never_send_users_to_private_modules() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for page in pages:
        private = re.search(r"wechat_kf\._(?!_)\w+", page.read_text(encoding="utf-8"))
        assert private is None, f"{page.name} names {private.group(0)}"
    store_page = (ROOT / "docs" / "tokens" / "custom-store.md").read_text(encoding="utf-8")
    assert "wechat_kf.new_fence()" in store_page
