"""The pytest plugin users enable with ``pytest_plugins = ["wechat_kf.testing.pytest_plugin"]``."""

from __future__ import annotations

import pytest

from wechat_kf import AsyncWeChat, Text
from wechat_kf.testing import FakeServer, FakeWeChat

pytestmark = pytest.mark.anyio


async def test_fixtures_serve_a_fresh_fake_on_loopback(
    fake_wechat: FakeWeChat, fake_wechat_server: FakeServer
) -> None:
    assert fake_wechat_server.fake is fake_wechat
    assert fake_wechat_server.base_url.startswith("http://127.0.0.1:")
    fake_wechat.user_says("o_customer")
    async with AsyncWeChat(
        fake_wechat.appid, fake_wechat.secret, base_url=fake_wechat_server.base_url
    ) as wx:
        await wx.message.send("o_customer", Text(content="hello"))
    assert fake_wechat.sent_to("o_customer") == [
        {"touser": "o_customer", "msgtype": "text", "text": {"content": "hello"}}
    ]


def test_each_test_gets_its_own_fake(fake_wechat: FakeWeChat) -> None:
    assert list(fake_wechat.requests) == []
    assert fake_wechat.agents == {}
