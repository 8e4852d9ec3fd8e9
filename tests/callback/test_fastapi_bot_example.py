"""docs/examples/fastapi_bot.py runs as a program and prints what its output block says.

Shortened (``BOT_THINKING_SECONDS``, ``BOT_REPLY_DEADLINE``) so that the 8 seconds take under
one: once with its own fake WeChat, once against ours, where the typing and the AI mark show.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.docs import test_examples as examples
from wechat_kf.testing import FakeWeChat

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "fastapi_bot.py"


def promised_output() -> str:
    return examples.promised_output(EXAMPLE.read_text(encoding="utf-8"))


def run(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WECHAT_")}
    environ.update(
        BOT_THINKING_SECONDS="0.6", BOT_REPLY_DEADLINE="0.2", PYTHONIOENCODING="utf-8", **env
    )
    done = subprocess.run(
        [sys.executable, str(EXAMPLE.relative_to(ROOT))],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_example_runs_with_its_own_fake_wechat() -> None:
    assert run() == promised_output()


def test_the_example_against_a_wechat_of_ours_shows_typing_then_ai_marked_paragraphs() -> None:
    fake = FakeWeChat()
    fake.user_says("o_customer_001", "怎么退货？")
    with fake.serve() as server:
        output = run(
            WECHAT_BASE_URL=server.base_url, WECHAT_APPID=fake.appid, WECHAT_SECRET=fake.secret
        )
    assert output == promised_output()
    calls = [
        (r.path.rsplit("/", 1)[-1], r.json().get("command") or r.json()["aimsgcontext"])
        for r in fake.requests
        if r.path.startswith("/cgi-bin/message/custom/")
    ]
    assert calls[0] == ("typing", "Typing")  # shown at the deadline, before any paragraph
    sends = [call for call in calls if call[0] == "send"]
    assert sends == [("send", {"is_ai_msg": 1})] * 3
