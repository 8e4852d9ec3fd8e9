"""The fake's agent-account endpoints, over raw HTTP: lists, add, update, delete, invitations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.testing.fake_http import OK, T0, RawAPI, errcode
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

ADD = "/customservice/kfaccount/add"
UPDATE = "/customservice/kfaccount/update"
DELETE = "/customservice/kfaccount/del"
INVITE = "/customservice/kfaccount/inviteworker"
KF_LIST = "/cgi-bin/customservice/getkflist"
ONLINE = "/cgi-bin/customservice/getonlinekflist"
WEEK = 7 * 86400


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"kf_account": "a@b", "nickname": "A"}, 0, id="shortest"),
        pytest.param({"kf_account": "abcdefghij@" + "x" * 30, "nickname": "A"}, 0, id="longest"),
        pytest.param({"kf_account": "a_1@gh_test", "nickname": "A"}, 0, id="underscore"),
        pytest.param({"kf_account": "a@测试号", "nickname": "A"}, 0, id="unicode-suffix"),
        pytest.param({"kf_account": "abcdefghijk@b", "nickname": "A"}, 65404, id="prefix-11"),
        pytest.param({"kf_account": "@b", "nickname": "A"}, 65404, id="no-prefix"),
        pytest.param({"kf_account": "a-b@b", "nickname": "A"}, 65404, id="prefix-dash"),
        pytest.param({"kf_account": "a@", "nickname": "A"}, 65404, id="no-suffix"),
        pytest.param({"kf_account": "a@" + "x" * 31, "nickname": "A"}, 65404, id="suffix-31"),
        pytest.param({"kf_account": "a@b@c", "nickname": "A"}, 65404, id="two-at"),
        pytest.param({"kf_account": "a@b c", "nickname": "A"}, 65404, id="space"),
        pytest.param({"kf_account": "ab", "nickname": "A"}, 65404, id="no-at"),
        pytest.param({"kf_account": 7, "nickname": "A"}, 65404, id="not-a-string"),
        pytest.param({"nickname": "A"}, 65404, id="missing-account"),
        pytest.param({"kf_account": "a@b", "nickname": "x" * 16}, 0, id="nick-16"),
        pytest.param({"kf_account": "a@b", "nickname": "客服" * 8}, 0, id="nick-16-chinese"),
        pytest.param({"kf_account": "a@b", "nickname": "x" * 17}, 65403, id="nick-17"),
        pytest.param({"kf_account": "a@b", "nickname": ""}, 65403, id="nick-empty"),
        pytest.param({"kf_account": "a@b", "nickname": 5}, 65403, id="nick-not-string"),
        pytest.param({"kf_account": "a@b"}, 65403, id="nick-missing"),
    ],
)
async def test_add_validates_account_and_nickname(
    api: RawAPI, wechat: FakeWeChat, body: dict[str, Any], expected: int
) -> None:
    assert errcode(await api.post(ADD, body)) == expected
    assert list(wechat.agents) == ([body["kf_account"]] if expected == 0 else [])


async def test_add_lists_the_agent_unbound(api: RawAPI) -> None:
    assert await api.post(ADD, {"kf_account": "alice@gh", "nickname": "小王"}) == OK
    assert await api.get(KF_LIST) == {
        "kf_list": [
            {"kf_account": "alice@gh", "kf_nick": "小王", "kf_id": 1001, "kf_headimgurl": ""}
        ]
    }


async def test_add_refuses_an_existing_account(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.add_agent("alice@gh")
    assert errcode(await api.post(ADD, {"kf_account": "alice@gh", "nickname": "A"})) == 65406


async def test_add_stops_at_100_accounts(api: RawAPI, wechat: FakeWeChat) -> None:
    for n in range(99):
        wechat.add_agent(f"a{n}@gh")
    assert await api.post(ADD, {"kf_account": "last@gh", "nickname": "A"}) == OK
    assert errcode(await api.post(ADD, {"kf_account": "more@gh", "nickname": "A"})) == 65405
    assert len(wechat.agents) == 100


async def test_kf_id_counts_from_1001_and_drifts_between_int_and_str(
    api: RawAPI, wechat: FakeWeChat
) -> None:
    for name in ("a", "b", "c"):
        assert await api.post(ADD, {"kf_account": f"{name}@gh", "nickname": name}) == OK
    assert await api.post(DELETE, {"kf_account": "c@gh"}) == OK
    wechat.add_agent("d@gh", bound_to=None)
    ids = [entry["kf_id"] for entry in (await api.get(KF_LIST))["kf_list"]]
    assert ids == [1001, "1002", "1004"]


async def test_kf_list_shows_binding_and_invitation(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.add_agent("bound@gh", "Bound", bound_to="wx_agent1")
    wechat.add_agent("invited@gh", "Invited", bound_to=None)
    wechat.add_agent("expired@gh", "Expired", bound_to=None)
    assert await api.post(INVITE, {"kf_account": "expired@gh", "invite_wx": "wx_old01"}) == OK
    wechat.clock.advance(WEEK + 1)
    assert await api.post(INVITE, {"kf_account": "invited@gh", "invite_wx": "wx_new01"}) == OK
    assert await api.get(KF_LIST) == {
        "kf_list": [
            {
                "kf_account": "bound@gh",
                "kf_nick": "Bound",
                "kf_id": 1001,
                "kf_headimgurl": "",
                "kf_wx": "wx_agent1",
            },
            {
                "kf_account": "invited@gh",
                "kf_nick": "Invited",
                "kf_id": "1002",
                "kf_headimgurl": "",
                "invite_wx": "wx_new01",
                "invite_expire_time": T0 + 2 * WEEK + 1,
                "invite_status": "waiting",
            },
            {
                "kf_account": "expired@gh",
                "kf_nick": "Expired",
                "kf_id": 1003,
                "kf_headimgurl": "",
                "invite_wx": "wx_old01",
                "invite_expire_time": T0 + WEEK,
                "invite_status": "expired",
            },
        ]
    }


async def test_invitation_expires_only_once_the_clock_passes_it(
    api: RawAPI, wechat: FakeWeChat
) -> None:
    wechat.add_agent("a@gh", bound_to=None)
    assert await api.post(INVITE, {"kf_account": "a@gh", "invite_wx": "wx_agent1"}) == OK
    wechat.clock.advance(WEEK)
    assert (await api.get(KF_LIST))["kf_list"][0]["invite_status"] == "waiting"
    wechat.clock.advance(1)
    assert (await api.get(KF_LIST))["kf_list"][0]["invite_status"] == "expired"


async def test_accepted_and_rejected_invitations(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.add_agent("yes@gh", "Yes", bound_to=None)
    wechat.add_agent("no@gh", "No", bound_to=None)
    assert await api.post(INVITE, {"kf_account": "yes@gh", "invite_wx": "wx_yes01"}) == OK
    assert await api.post(INVITE, {"kf_account": "no@gh", "invite_wx": "wx_no001"}) == OK
    wechat.accept_invite("yes@gh")
    wechat.reject_invite("no@gh")
    assert (await api.get(KF_LIST))["kf_list"] == [
        {
            "kf_account": "yes@gh",
            "kf_nick": "Yes",
            "kf_id": 1001,
            "kf_headimgurl": "",
            "kf_wx": "wx_yes01",
        },
        {
            "kf_account": "no@gh",
            "kf_nick": "No",
            "kf_id": "1002",
            "kf_headimgurl": "",
            "invite_wx": "wx_no001",
            "invite_expire_time": T0 + WEEK,
            "invite_status": "rejected",
        },
    ]


def _unbound(wechat: FakeWeChat) -> None:
    wechat.add_agent("a@gh", bound_to=None)


def _bound(wechat: FakeWeChat) -> None:
    wechat.add_agent("a@gh", bound_to="wx_agent1")


def _invited(status: str, *, other: bool = False, to: str = "wx_target") -> Callable[..., None]:
    def setup(wechat: FakeWeChat) -> None:
        wechat.add_agent("a@gh", bound_to=None)
        invited = "b@gh" if other else "a@gh"
        if other:
            wechat.add_agent(invited, bound_to=None)
        agent = wechat.agents[invited]
        agent.invite_wx, agent.invite_status = to, "waiting"
        agent.invite_expire_time = T0 + WEEK if status == "waiting" else T0 - 1
        if status == "rejected":
            agent.invite_status = "rejected"

    return setup


def _other_bound_to_target(wechat: FakeWeChat) -> None:
    wechat.add_agent("a@gh", bound_to=None)
    wechat.add_agent("b@gh", bound_to="wx_target")


@pytest.mark.parametrize(
    ("setup", "body", "expected"),
    [
        pytest.param(_unbound, {"kf_account": "a@gh", "invite_wx": "wx_target"}, 0, id="ok"),
        pytest.param(_unbound, {"kf_account": "zz@gh", "invite_wx": "wx_target"}, 65401, id="who"),
        pytest.param(_unbound, {"invite_wx": "wx_target"}, 65401, id="no-account"),
        pytest.param(_unbound, {"kf_account": "a@gh", "invite_wx": "1abcdef"}, 65409, id="digit"),
        pytest.param(_unbound, {"kf_account": "a@gh", "invite_wx": "abcde"}, 65409, id="short"),
        pytest.param(_unbound, {"kf_account": "a@gh", "invite_wx": "abcdef"}, 0, id="len-6"),
        pytest.param(_unbound, {"kf_account": "a@gh", "invite_wx": "a" * 20}, 0, id="len-20"),
        pytest.param(_unbound, {"kf_account": "a@gh", "invite_wx": "a" * 21}, 65409, id="len-21"),
        pytest.param(_unbound, {"kf_account": "a@gh", "invite_wx": "ab cdef"}, 65409, id="space"),
        pytest.param(_unbound, {"kf_account": "a@gh", "invite_wx": "o_openid"}, 0, id="openid"),
        pytest.param(_unbound, {"kf_account": "a@gh"}, 65409, id="missing"),
        pytest.param(_bound, {"kf_account": "a@gh", "invite_wx": "wx_target"}, 65412, id="bound"),
        pytest.param(
            _invited("waiting"),
            {"kf_account": "a@gh", "invite_wx": "wx_other"},
            65411,
            id="pending",
        ),
        pytest.param(
            _invited("expired"), {"kf_account": "a@gh", "invite_wx": "wx_other"}, 0, id="expired"
        ),
        pytest.param(
            _invited("rejected"), {"kf_account": "a@gh", "invite_wx": "wx_other"}, 0, id="rejected"
        ),
        pytest.param(
            _invited("waiting", other=True),
            {"kf_account": "a@gh", "invite_wx": "wx_target"},
            65408,
            id="other-pending-same-wx",
        ),
        pytest.param(
            _invited("expired", other=True),
            {"kf_account": "a@gh", "invite_wx": "wx_target"},
            0,
            id="other-expired-same-wx",
        ),
        pytest.param(
            _invited("waiting", other=True, to="wx_else"),
            {"kf_account": "a@gh", "invite_wx": "wx_target"},
            0,
            id="other-pending-other-wx",
        ),
        pytest.param(
            _other_bound_to_target,
            {"kf_account": "a@gh", "invite_wx": "wx_target"},
            65407,
            id="already-an-agent",
        ),
    ],
)
async def test_invite_worker_rules(
    api: RawAPI,
    wechat: FakeWeChat,
    setup: Callable[[FakeWeChat], None],
    body: dict[str, Any],
    expected: int,
) -> None:
    setup(wechat)
    assert errcode(await api.post(INVITE, body)) == expected
    if expected == 0:
        agent = wechat.agents["a@gh"]
        assert (agent.invite_wx, agent.invite_status, agent.invite_expire_time) == (
            body["invite_wx"],
            "waiting",
            T0 + WEEK,
        )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"kf_account": "a@gh", "nickname": "新名字"}, 0, id="ok"),
        pytest.param({"kf_account": "b@gh", "nickname": "New"}, 65401, id="unknown"),
        pytest.param({"nickname": "New"}, 65401, id="missing-account"),
        pytest.param({"kf_account": "a@gh", "nickname": "x" * 17}, 65403, id="nick-17"),
        pytest.param({"kf_account": "a@gh", "nickname": ""}, 65403, id="nick-empty"),
        pytest.param({"kf_account": "a@gh"}, 65403, id="nick-missing"),
    ],
)
async def test_update(api: RawAPI, wechat: FakeWeChat, body: dict[str, Any], expected: int) -> None:
    wechat.add_agent("a@gh", "Old")
    assert errcode(await api.post(UPDATE, body)) == expected
    assert wechat.agents["a@gh"].nickname == ("新名字" if expected == 0 else "Old")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"kf_account": "a@gh"}, 0, id="ok"),
        pytest.param({"kf_account": "b@gh"}, 65401, id="unknown"),
        pytest.param({}, 65401, id="missing"),
    ],
)
async def test_delete(api: RawAPI, wechat: FakeWeChat, body: dict[str, Any], expected: int) -> None:
    wechat.add_agent("a@gh")
    assert errcode(await api.post(DELETE, body)) == expected
    assert list(wechat.agents) == ([] if expected == 0 else ["a@gh"])


async def test_delete_is_post_only(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.add_agent("a@gh")
    assert errcode(await api.get(DELETE, kf_account="a@gh")) == 43002
    assert list(wechat.agents) == ["a@gh"]


async def test_delete_ends_the_agents_sessions(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.add_agent("a@gh", online=True)
    wechat.add_agent("b@gh", online=True)
    for openid in ("o_1", "o_2", "o_3"):
        wechat.user_says(openid, queue=True)
    wechat.agent_accepts("a@gh", "o_1")
    wechat.agent_accepts("b@gh", "o_2")
    wechat.agent_accepts("a@gh", "o_3")
    assert await api.post(DELETE, {"kf_account": "a@gh"}) == OK
    assert list(wechat.sessions) == ["o_2"]
    closed = [(r.openid, r.worker) for r in wechat.records if r.opercode == 1004]
    assert closed == [("o_1", "a@gh"), ("o_3", "a@gh")]


async def test_online_list(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.add_agent("off@gh")
    wechat.add_agent("web@gh", online=True, auto_accept=5)
    wechat.add_agent("both@gh")
    wechat.set_online("both@gh", 3)
    wechat.user_says("o_1", queue=True)
    wechat.user_says("o_2", queue=True)
    wechat.agent_accepts("web@gh")
    wechat.agent_accepts("web@gh")
    assert await api.get(ONLINE) == {
        "kf_online_list": [
            {
                "kf_account": "web@gh",
                "status": 1,
                "kf_id": "1002",
                "accepted_case": 2,
                "auto_accept": 5,
            },
            {
                "kf_account": "both@gh",
                "status": 3,
                "kf_id": 1003,
                "accepted_case": 0,
                "auto_accept": 0,
            },
        ]
    }


async def test_lists_are_empty_without_agents(api: RawAPI) -> None:
    assert await api.get(KF_LIST) == {"kf_list": []}
    assert await api.get(ONLINE) == {"kf_online_list": []}
