"""``wechat-kf windows show|reachable`` and ``send-many --only-reachable`` on a real Redis.

The ledger is seeded as an application would keep it: a client on a ``RedisWindowStore``
recording the users' interactions; the commands read the same Redis (``WECHAT_REDIS_URL``).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import anyio
import pytest

from tests.cli.conftest import SEND_PATH, Invoker
from tests.redis_server import RedisServer, free_port
from wechat_kf import AsyncWeChat, MemoryTokenStore, RedisWindowStore
from wechat_kf.testing import FakeWeChat

HOUR = 3600.0


@pytest.fixture
def ledger_env(redis_server: RedisServer) -> dict[str, str]:
    return {
        "WECHAT_REDIS_URL": redis_server.url,
        "WECHAT_REDIS_PREFIX": f"c{uuid.uuid4().hex[:8]}:",
    }


@pytest.fixture
def cli(wechat_kf: Invoker, ledger_env: dict[str, str]) -> Invoker:
    wechat_kf.env.update(ledger_env)
    return wechat_kf


def seed(env: dict[str, str], appid: str, interactions: dict[str, float]) -> None:
    """Record each user's message at the given Unix time, as the application's endpoint does."""

    async def main() -> None:
        async with (
            RedisWindowStore.from_url(
                env["WECHAT_REDIS_URL"], prefix=env["WECHAT_REDIS_PREFIX"]
            ) as store,
            AsyncWeChat(appid, token_store=MemoryTokenStore(), window_store=store) as wx,
        ):
            for openid, at in interactions.items():
                await wx.windows.opened(openid, at=at)

    anyio.run(main)


def test_show_an_unknown_user(cli: Invoker) -> None:
    result = cli("windows", "show", "o_nobody")
    assert result.exit_code == 0, result.output
    assert "unknown" in result.stdout
    data = cli.json("windows", "show", "o_nobody")
    assert (data["known"], data["reachable"], data["messages_left"]) == (False, None, None)


def test_show_a_user_in_their_window(
    cli: Invoker, fake: FakeWeChat, ledger_env: dict[str, str]
) -> None:
    now = float(int(time.time()))
    seed(ledger_env, fake.appid, {"o_user": now})
    data = cli.json("windows", "show", "o_user")
    assert (data["reachable"], data["messages_left"], data["reason"]) == (True, 5, None)
    assert data["until"] == data["windows"][0]["until"]
    assert data["windows"][0]["window"] == "message"
    result = cli("windows", "show", "o_user")
    assert result.exit_code == 0, result.output
    assert "reachable" in result.stdout
    assert "open windows" in result.stdout


def test_reachable_counts_and_lists(
    cli: Invoker, fake: FakeWeChat, ledger_env: dict[str, str]
) -> None:
    now = time.time()
    seed(ledger_env, fake.appid, {"o_a": now, "o_b": now - HOUR, "o_old": now - 49 * HOUR})
    result = cli("windows", "reachable")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "2 users reachable now"
    assert cli.json("windows", "reachable") == {"openids": ["o_a", "o_b"], "count": 2}
    closed = cli.json("windows", "show", "o_old")
    assert (closed["reachable"], closed["reason"]) == (False, "outside_window")


def test_the_ledger_commands_need_no_secret(cli: Invoker) -> None:
    result = cli("windows", "reachable", env={"WECHAT_SECRET": None})
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "0 users reachable now"


def test_without_a_redis_url_the_command_says_where_the_ledger_is(wechat_kf: Invoker) -> None:
    result = wechat_kf("windows", "show", "o_user")
    assert result.exit_code == 2
    assert "WECHAT_REDIS_URL" in result.output


def test_redis_down_is_one_error_line_and_exit_3(cli: Invoker) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = cli("windows", "show", "o_user", env={"WECHAT_REDIS_URL": url})
    assert result.exit_code == 3, result.output
    assert "Redis window read" in result.stderr
    assert "Traceback" not in result.output


def test_send_many_only_reachable_skips_what_the_ledger_knows(
    cli: Invoker, fake: FakeWeChat, ledger_env: dict[str, str], tmp_path: Path
) -> None:
    now = time.time()
    fake.user_says("o_open")
    seed(ledger_env, fake.appid, {"o_open": now, "o_closed": now - 49 * HOUR})
    users = tmp_path / "users.txt"
    users.write_text("o_open\no_closed\no_unknown\n", encoding="utf-8")
    summary = cli.json("send-many", str(users), "--text", "notice", "--only-reachable", code=4)
    assert (summary["sent"], summary["failed"], summary["skipped"]) == (1, 1, 1)
    assert summary["skipped_by_reason"] == [
        {"reason": "outside their service window (the window ledger knows it)", "count": 1}
    ]
    assert sorted(r.json()["touser"] for r in fake.requests_to(SEND_PATH)) == [
        "o_open",
        "o_unknown",
    ]
    # Both answers went into the ledger: one message spent, one user learnt unreachable.
    assert cli.json("windows", "show", "o_open")["messages_left"] == 4
    assert cli.json("windows", "show", "o_unknown")["reason"] == "outside_window"


def test_send_many_only_reachable_records_its_skips_for_a_rerun(
    cli: Invoker, fake: FakeWeChat, ledger_env: dict[str, str], tmp_path: Path
) -> None:
    seed(ledger_env, fake.appid, {"o_closed": time.time() - 49 * HOUR})
    users = tmp_path / "users.txt"
    users.write_text("o_closed\n", encoding="utf-8")
    results = tmp_path / "results.jsonl"
    cli.json("send-many", str(users), "--text", "x", "--only-reachable", "--results", str(results))
    lines = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    assert [
        (line["status"], line["error"]) for line in lines if line.get("status") == "skipped"
    ] == [("skipped", "outside their service window (the window ledger knows it)")]
    fake.user_says("o_closed")  # the user writes again: a re-run reaches them
    seed(ledger_env, fake.appid, {"o_closed": time.time()})
    summary = cli.json(
        "send-many", str(users), "--text", "x", "--only-reachable", "--results", str(results)
    )
    assert summary["sent"] == 1


def test_only_reachable_needs_the_ledger(wechat_kf: Invoker, tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("o_user\n", encoding="utf-8")
    result = wechat_kf("send-many", str(users), "--text", "x", "--only-reachable")
    assert result.exit_code == 2
    assert "--redis-url" in result.output
