"""The customer-service routes over the fake's real loopback HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.testing.fake_http import OK, T0, RawAPI, errcode
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio


@pytest.fixture
async def wire(wechat: FakeWeChat) -> AsyncIterator[RawAPI]:
    """Like ``api``, but every call crosses a real socket."""
    with wechat.serve() as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            yield RawAPI(client, wechat)


async def test_agent_lifecycle(wire: RawAPI, wechat: FakeWeChat) -> None:
    body = {"kf_account": "alice@gh", "nickname": "小王 <客服>"}
    assert await wire.post("/customservice/kfaccount/add", body) == OK
    again = await wire.post("/customservice/kfaccount/add", body)
    assert errcode(again) == 65406
    assert again["errmsg"].startswith("kf_account already exists rid: ")
    invite = {"kf_account": "alice@gh", "invite_wx": "wx_alice"}
    assert await wire.post("/customservice/kfaccount/inviteworker", invite) == OK
    wechat.accept_invite("alice@gh")
    wechat.set_online("alice@gh")
    assert await wire.get("/cgi-bin/customservice/getonlinekflist") == {
        "kf_online_list": [
            {
                "kf_account": "alice@gh",
                "status": 1,
                "kf_id": 1001,
                "accepted_case": 0,
                "auto_accept": 0,
            }
        ]
    }


async def test_avatar_upload_over_the_wire(wire: RawAPI, wechat: FakeWeChat) -> None:
    wechat.add_agent("a@gh")
    image = b"\x89PNG\r\n\x1a\n" + b"\r\n" * (2 * 1024 * 1024)
    response = await wire.client.post(
        f"/customservice/kfaccount/uploadheadimg?access_token={wechat.issue_token()}&kf_account=a@gh",
        files={"media": ("a.png", image, "image/png")},
    )
    assert response.json() == OK
    assert wechat.agents["a@gh"].headimgurl.startswith("https://mmbiz.qpic.cn/mmbiz_png/")


async def test_session_and_window_over_the_wire(wire: RawAPI, wechat: FakeWeChat) -> None:
    wechat.add_agent("a@gh", online=True)
    wechat.user_says("o_1", "你好", queue=True)
    create = {"kf_account": "a@gh", "openid": "o_1"}
    assert await wire.post("/customservice/kfsession/create", create) == OK
    assert await wire.get("/customservice/kfsession/getsession", openid="o_1") == {
        "createtime": T0,
        "kf_account": "a@gh",
    }
    send = {
        "touser": "o_1",
        "msgtype": "text",
        "text": {"content": "您好，有什么可以帮您？"},
        "customservice": {"kf_account": "a@gh"},
    }
    for _ in range(5):
        assert await wire.post("/cgi-bin/message/custom/send", send) == OK
    assert errcode(await wire.post("/cgi-bin/message/custom/send", send)) == 45047
    assert wechat.sent_to("o_1") == [send] * 5
    page = {"starttime": T0, "endtime": T0 + 60, "msgid": 1, "number": 3}
    answer = await wire.post("/customservice/msgrecord/getmsglist", page)
    assert answer == {
        "recordlist": [
            {"openid": "o_1", "opercode": 2001, "text": "你好", "time": T0, "worker": ""},
            {"openid": "o_1", "opercode": 1000, "text": "", "time": T0, "worker": ""},
            {"openid": "o_1", "opercode": 1002, "text": "", "time": T0, "worker": "a@gh"},
        ],
        "number": 3,
        "msgid": 3,
    }
