"""The fake's helpers that play the other side: agents, invitations, users, the queue, records."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.testing.fake_http import T0
from wechat_kf.testing import FakeAgent, FakeRecord, FakeSession, FakeWaitCase, FakeWeChat


def test_add_agent_defaults(wechat: FakeWeChat) -> None:
    agent = wechat.add_agent("alice@gh")
    assert agent == FakeAgent(kf_account="alice@gh", nickname="alice", kf_id=1001, kf_wx="agent_wx")
    assert wechat.agents == {"alice@gh": agent}
    assert not agent.online


def test_add_agent_options(wechat: FakeWeChat) -> None:
    wechat.add_agent("a@gh")
    agent = wechat.add_agent("x" * 20 + "@gh", "客服", bound_to="wx_b", online=True, auto_accept=3)
    assert (agent.kf_id, agent.nickname, agent.kf_wx, agent.status, agent.auto_accept) == (
        1002,
        "客服",
        "wx_b",
        1,
        3,
    )


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda f: f.add_agent("a@gh"), id="duplicate"),
        pytest.param(lambda f: f.add_agent("b@gh", bound_to=None, online=True), id="unbound"),
        pytest.param(lambda f: f.set_online("a@gh", 4), id="bad-status"),
        pytest.param(lambda f: f.set_online("new@gh"), id="online-unbound"),
        pytest.param(lambda f: f.accept_invite("a@gh"), id="accept-no-invite"),
        pytest.param(lambda f: f.reject_invite("a@gh"), id="reject-no-invite"),
        pytest.param(lambda f: f.agent_accepts("a@gh"), id="queue-empty"),
        pytest.param(lambda f: f.agent_accepts("a@gh", "o_1"), id="not-waiting"),
        pytest.param(lambda f: f.user_says("not an openid"), id="bad-openid"),
        pytest.param(lambda f: f.user_follows(""), id="empty-openid"),
    ],
)
def test_helper_misuse_raises_value_error(
    wechat: FakeWeChat, call: Callable[[FakeWeChat], object]
) -> None:
    wechat.add_agent("a@gh")
    wechat.add_agent("new@gh", bound_to=None)
    with pytest.raises(ValueError):
        call(wechat)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda f: f.set_online("zz@gh"), id="set_online"),
        pytest.param(lambda f: f.accept_invite("zz@gh"), id="accept_invite"),
        pytest.param(lambda f: f.reject_invite("zz@gh"), id="reject_invite"),
        pytest.param(lambda f: f.agent_accepts("zz@gh"), id="agent_accepts"),
    ],
)
def test_helpers_on_unknown_agents_raise_key_error(
    wechat: FakeWeChat, call: Callable[[FakeWeChat], object]
) -> None:
    with pytest.raises(KeyError, match="zz@gh"):
        call(wechat)


@pytest.mark.parametrize("status", [0, 1, 2, 3])
def test_set_online(wechat: FakeWeChat, status: int) -> None:
    wechat.add_agent("a@gh", online=True)
    wechat.set_online("a@gh", status)
    assert wechat.agents["a@gh"].status == status


def test_accepting_an_expired_invitation_fails(wechat: FakeWeChat) -> None:
    agent = wechat.add_agent("a@gh", bound_to=None)
    agent.invite_wx, agent.invite_status, agent.invite_expire_time = "wx_x", "waiting", T0
    wechat.clock.advance(1)
    assert agent.invite_state(wechat.clock.now()) == "expired"
    with pytest.raises(ValueError, match="no waiting invitation"):
        wechat.accept_invite("a@gh")


def test_user_says_records_and_queues(wechat: FakeWeChat) -> None:
    wechat.add_agent("a@gh", online=True)
    first = wechat.user_says("o_1", "hello", queue=True)
    assert first == FakeRecord(id=1, openid="o_1", opercode=2001, text="hello", time=T0)
    assert wechat.waiting == {"o_1": FakeWaitCase(openid="o_1", createtime=T0, latest_time=T0)}
    wechat.clock.advance(9)
    wechat.user_says("o_1", "hello?", queue=True)  # already waiting: no second 1000
    assert wechat.waiting["o_1"].latest_time == T0 + 9
    session = wechat.agent_accepts("a@gh")
    assert session == FakeSession(openid="o_1", kf_account="a@gh", createtime=T0 + 9)
    assert wechat.user_says("o_1", "thanks", queue=True).opercode == 2003
    assert wechat.waiting == {}
    assert [(r.id, r.opercode, r.text, r.worker) for r in wechat.records] == [
        (1, 2001, "hello", ""),
        (2, 1000, "", ""),
        (3, 2001, "hello?", ""),
        (4, 1001, "", "a@gh"),
        (5, 2003, "thanks", "a@gh"),
    ]


def test_agent_accepts_the_oldest_or_the_named_user(wechat: FakeWeChat) -> None:
    wechat.add_agent("a@gh")
    for openid in ("o_1", "o_2", "o_3"):
        wechat.user_says(openid, queue=True)
    assert wechat.agent_accepts("a@gh", "o_2").openid == "o_2"
    assert wechat.agent_accepts("a@gh").openid == "o_1"
    assert list(wechat.waiting) == ["o_3"]
    assert [s.openid for s in wechat.sessions_of("a@gh")] == ["o_2", "o_1"]


def test_add_record_numbers_records(wechat: FakeWeChat) -> None:
    seeded = wechat.add_record("o_1", 9999, "future opercode", worker="a@gh", time=5)
    assert seeded == FakeRecord(
        id=1, openid="o_1", opercode=9999, text="future opercode", time=5, worker="a@gh"
    )
    assert wechat.add_record("o_1", 2001, "x").id == 2
    assert wechat.records[-1].time == T0


def test_sent_to_returns_a_copy(wechat: FakeWeChat) -> None:
    wechat.user("o_1").sent.append({"touser": "o_1"})
    wechat.sent_to("o_1").clear()
    assert wechat.sent_to("o_1") == [{"touser": "o_1"}]


def test_a_fresh_fake_has_the_documented_defaults() -> None:
    wechat = FakeWeChat()
    assert (wechat.agents, wechat.sessions, wechat.waiting, wechat.users, wechat.records) == (
        {},
        {},
        {},
        {},
        [],
    )
    assert wechat.legacy_waitcase_shape is False
    assert wechat.records_msgid_inclusive is True
