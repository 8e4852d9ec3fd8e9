"""``wx.session``: create, close, get, list and the waiting queue, against the fake's rules."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from wechat_kf import AsyncWeChat, CustomerServiceError, KfSession
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

AGENT = "kf_1@service"


async def test_create_get_list_close(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.add_agent(AGENT, online=True)
    fake.user_says("user-1")
    await wx.session.create(AGENT, "user-1")
    await wx.session.create(AGENT, "user-1")  # already exists: still ok

    session = await wx.session.get("user-1")
    assert session.kf_account == AGENT
    assert session.is_served
    assert isinstance(session.createtime, datetime)
    assert session.createtime.tzinfo is timezone.utc

    (served,) = await wx.session.list(AGENT)
    assert served.openid == "user-1"
    assert served.createtime == session.createtime

    await wx.session.close(AGENT, "user-1")
    assert await wx.session.get("user-1") == KfSession(kf_account="", createtime=None)
    assert await wx.session.list(AGENT) == []

    create = fake.requests_to("/customservice/kfsession/create")[0]
    assert create.body == b'{"kf_account":"kf_1@service","openid":"user-1"}'
    get = fake.requests_to("/customservice/kfsession/getsession")[0]
    assert get.method == "GET"
    assert get.raw_query.endswith("&openid=user-1")
    listing = fake.requests_to("/customservice/kfsession/getsessionlist")[0]
    assert listing.raw_query.endswith("&kf_account=kf_1@service")


async def test_create_and_close_with_note(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.add_agent(AGENT, online=True)
    await wx.session.create(AGENT, "user-1", text="VIP 客户")
    (request,) = fake.requests_to("/customservice/kfsession/create")
    assert request.json() == {"kf_account": AGENT, "openid": "user-1", "text": "VIP 客户"}


async def test_offline_agent_cannot_take_a_session(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.add_agent(AGENT)
    with pytest.raises(CustomerServiceError) as info:
        await wx.session.create(AGENT, "user-1")
    assert info.value.errcode == 65415


async def test_close_rules(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.add_agent(AGENT, online=True)
    fake.add_agent("kf_2@service", online=True)
    with pytest.raises(CustomerServiceError) as info:
        await wx.session.close(AGENT, "user-1")
    assert info.value.errcode == 65413
    await wx.session.create("kf_2@service", "user-1")
    with pytest.raises(CustomerServiceError) as info:
        await wx.session.close(AGENT, "user-1")
    assert info.value.errcode == 65414


async def test_waiting_queue_true_count_and_100_cap(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    for n in range(130):
        fake.user_says(f"user-{n:03d}", queue=True)
        fake.clock.advance(1)
    waiting = await wx.session.waiting()
    assert waiting.count == 130
    assert len(waiting.cases) == 100
    assert [c.openid for c in waiting.cases[:2]] == ["user-000", "user-001"]  # oldest first
    times = [c.latest_time for c in waiting.cases]
    assert times == sorted(times)
    assert all(t is not None and t.tzinfo is timezone.utc for t in times)


async def test_waiting_queue_legacy_shape(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.legacy_waitcase_shape = True
    fake.user_says("user-1", queue=True)
    waiting = await wx.session.waiting()
    (case,) = waiting.cases
    assert case.openid == "user-1"
    assert isinstance(case.latest_time, datetime)


async def test_agent_accepting_from_queue_leaves_it(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.add_agent(AGENT, online=True)
    fake.user_says("user-1", queue=True)
    await wx.session.create(AGENT, "user-1")
    assert (await wx.session.waiting()).count == 0
