"""``wechat-kf agents ...`` and ``wechat-kf sessions ...`` end to end on loopback."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Invoker
from wechat_kf.testing import FakeWeChat

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def test_agent_lifecycle(wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path) -> None:
    result = wechat_kf("agents", "add", "alice@gh_shop", "Alice 小爱")
    assert result.exit_code == 0, result.output
    assert result.stdout == "✓ added alice@gh_shop (Alice 小爱)\n"
    assert fake.agents["alice@gh_shop"].nickname == "Alice 小爱"

    assert wechat_kf.json("agents", "update", "alice@gh_shop", "小爱") == {
        "ok": True,
        "kf_account": "alice@gh_shop",
    }
    assert fake.agents["alice@gh_shop"].nickname == "小爱"

    result = wechat_kf("agents", "invite", "alice@gh_shop", "alice_wx")
    assert result.exit_code == 0
    assert "invited alice_wx to alice@gh_shop" in result.stdout
    listed = wechat_kf.json("agents", "list")
    assert listed[0]["invite_wx"] == "alice_wx"
    assert listed[0]["invite_status"] == "waiting"
    table = wechat_kf("agents", "list").stdout
    assert "1 agent account\n" in table
    assert "waiting → alice_wx (until " in table

    fake.accept_invite("alice@gh_shop")
    fake.set_online("alice@gh_shop")
    listed = wechat_kf.json("agents", "list")
    assert listed == [
        {
            "kf_account": "alice@gh_shop",
            "kf_nick": "小爱",
            "kf_id": "1001",
            "kf_headimgurl": "",
            "kf_wx": "alice_wx",
            "invite_wx": None,
            "invite_expire_time": None,
            "invite_status": None,
            "kf_openid": None,
        }
    ]
    online = wechat_kf.json("agents", "online")
    assert online[0]["kf_account"] == "alice@gh_shop"
    assert online[0]["status"] == 1
    table = wechat_kf("agents", "online").stdout
    assert "1 agent online" in table
    assert "web" in table

    avatar = tmp_path / "a.png"
    avatar.write_bytes(PNG)
    result = wechat_kf("agents", "avatar", "alice@gh_shop", str(avatar))
    assert result.exit_code == 0, result.output
    assert fake.agents["alice@gh_shop"].headimgurl

    result = wechat_kf("agents", "delete", "alice@gh_shop")
    assert result.exit_code == 0
    assert "deleted alice@gh_shop" in result.stdout
    assert fake.agents == {}


def test_agent_errors(wechat_kf: Invoker, fake: FakeWeChat, tmp_path: Path) -> None:
    fake.add_agent("a@gh", "Ann")
    result = wechat_kf("agents", "add", "a@gh", "Ann")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: errcode 65406 (the agent account already exists) rid:")

    result = wechat_kf("agents", "add", "no-at-sign", "Ann")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid kf_account: must be prefix@wechatid")
    assert not fake.requests_to("/customservice/kfaccount/add")[1:]  # refused before sending

    not_image = tmp_path / "a.txt"
    not_image.write_text("hello")
    result = wechat_kf("agents", "avatar", "a@gh", str(not_image))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid image: must be a JPEG or PNG image")

    result = wechat_kf("agents", "avatar", "a@gh", str(tmp_path / "missing.png"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_empty_lists(wechat_kf: Invoker) -> None:
    assert wechat_kf("agents", "list").stdout == "0 agent accounts: (none)\n"
    assert wechat_kf("agents", "online").stdout == "0 agents online: (none)\n"


def test_sessions(wechat_kf: Invoker, fake: FakeWeChat) -> None:
    fake.add_agent("a@gh", "Ann", online=True)
    fake.user_says("o_1", "人工客服", queue=True)
    fake.user_says("o_2", "你好", queue=True)

    waiting = wechat_kf.json("sessions", "waiting")
    assert waiting["count"] == 2
    assert [case["openid"] for case in waiting["cases"]] == ["o_1", "o_2"]
    assert "2 users waiting" in wechat_kf("sessions", "waiting").stdout

    result = wechat_kf("sessions", "create", "a@gh", "o_1", "--text", "VIP")
    assert result.exit_code == 0, result.output
    assert result.stdout == "✓ a@gh now serves o_1\n"
    assert fake.sessions["o_1"].kf_account == "a@gh"

    got = wechat_kf.json("sessions", "get", "o_1")
    assert got["openid"] == "o_1"
    assert got["kf_account"] == "a@gh"
    assert got["createtime"].endswith("+00:00")
    assert "a@gh" in wechat_kf("sessions", "get", "o_1").stdout
    assert wechat_kf("sessions", "get", "o_2").stdout == "o_2 is not served by any agent\n"

    served = wechat_kf.json("sessions", "list", "a@gh")
    assert [s["openid"] for s in served] == ["o_1"]
    assert "a@gh serves 1 user\n" in wechat_kf("sessions", "list", "a@gh").stdout

    assert wechat_kf.json("sessions", "close", "a@gh", "o_1") == {
        "ok": True,
        "kf_account": "a@gh",
        "openid": "o_1",
    }
    assert "o_1" not in fake.sessions

    result = wechat_kf("sessions", "close", "a@gh", "o_1")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: errcode 65413 (no session exists for this user) rid:")

    fake.set_online("a@gh", 0)
    result = wechat_kf("sessions", "create", "a@gh", "o_2")
    assert result.exit_code == 1
    assert "errcode 65415 (the agent is not online)" in result.stderr
