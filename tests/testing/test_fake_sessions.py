"""The fake's session endpoints over raw HTTP: create, close, get, per-agent list, wait queue."""

from __future__ import annotations

from typing import Any

import pytest

from tests.testing.fake_http import OK, T0, RawAPI, errcode
from wechat_kf.testing import FakeSession, FakeWeChat

pytestmark = pytest.mark.anyio

CREATE = "/customservice/kfsession/create"
CLOSE = "/customservice/kfsession/close"
GET = "/customservice/kfsession/getsession"
LIST = "/customservice/kfsession/getsessionlist"
WAIT = "/customservice/kfsession/getwaitcase"


@pytest.fixture
def agents(wechat: FakeWeChat) -> FakeWeChat:
    """``a@gh`` and ``b@gh`` online; ``off@gh`` bound but offline; ``new@gh`` not bound."""
    wechat.add_agent("a@gh", online=True)
    wechat.add_agent("b@gh", online=True)
    wechat.add_agent("off@gh")
    wechat.add_agent("new@gh", bound_to=None)
    return wechat


def _codes(wechat: FakeWeChat) -> list[tuple[int, str, str]]:
    return [(r.opercode, r.openid, r.worker) for r in wechat.records]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"kf_account": "a@gh", "openid": "o_1"}, 0, id="ok"),
        pytest.param({"kf_account": "a@gh", "openid": "o_1", "text": "hi"}, 0, id="with-text"),
        pytest.param({"kf_account": "zz@gh", "openid": "o_1"}, 65401, id="unknown-agent"),
        pytest.param({"openid": "o_1"}, 65401, id="no-agent"),
        pytest.param({"kf_account": "off@gh", "openid": "o_1"}, 65415, id="offline"),
        pytest.param({"kf_account": "new@gh", "openid": "o_1"}, 65415, id="unbound"),
        pytest.param({"kf_account": "a@gh"}, 40003, id="no-openid"),
        pytest.param({"kf_account": "a@gh", "openid": ""}, 40003, id="empty-openid"),
        pytest.param({"kf_account": "a@gh", "openid": "o 1"}, 40003, id="bad-openid"),
        pytest.param({"kf_account": "a@gh", "openid": "o_1", "text": 1}, 47001, id="bad-text"),
    ],
)
async def test_create_rules(
    api: RawAPI, agents: FakeWeChat, body: dict[str, Any], expected: int
) -> None:
    assert errcode(await api.post(CREATE, body)) == expected
    if expected == 0:
        assert agents.sessions == {
            "o_1": FakeSession(openid="o_1", kf_account="a@gh", createtime=T0)
        }
        assert [(r.opercode, r.text, r.worker) for r in agents.records] == [
            (1002, body.get("text", ""), "a@gh")
        ]
    else:
        assert agents.sessions == {}
        assert agents.records == []


async def test_create_again_with_the_same_agent_changes_nothing(
    api: RawAPI, agents: FakeWeChat
) -> None:
    assert await api.post(CREATE, {"kf_account": "a@gh", "openid": "o_1"}) == OK
    agents.clock.advance(10)
    assert await api.post(CREATE, {"kf_account": "a@gh", "openid": "o_1"}) == OK
    assert agents.sessions["o_1"].createtime == T0
    assert _codes(agents) == [(1002, "o_1", "a@gh")]


async def test_create_with_another_agent_transfers(api: RawAPI, agents: FakeWeChat) -> None:
    assert await api.post(CREATE, {"kf_account": "a@gh", "openid": "o_1"}) == OK
    agents.clock.advance(10)
    assert await api.post(CREATE, {"kf_account": "b@gh", "openid": "o_1"}) == OK
    assert await api.get(GET, openid="o_1") == {"createtime": T0 + 10, "kf_account": "b@gh"}
    assert _codes(agents) == [(1002, "o_1", "a@gh"), (1003, "o_1", "b@gh")]
    assert await api.get(LIST, kf_account="a@gh") == {"sessionlist": []}


async def test_create_takes_the_user_out_of_the_queue(api: RawAPI, agents: FakeWeChat) -> None:
    agents.user_says("o_1", queue=True)
    agents.user_says("o_2", queue=True)
    assert await api.post(CREATE, {"kf_account": "a@gh", "openid": "o_1"}) == OK
    assert list(agents.waiting) == ["o_2"]
    assert await api.get(WAIT) == {
        "count": 1,
        "waitcaselist": [{"latest_time": T0, "openid": "o_2"}],
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"kf_account": "a@gh", "openid": "o_1"}, 0, id="ok"),
        pytest.param({"kf_account": "a@gh", "openid": "o_1", "text": "bye"}, 0, id="with-text"),
        pytest.param({"kf_account": "b@gh", "openid": "o_1"}, 65414, id="other-agent"),
        pytest.param({"kf_account": "a@gh", "openid": "o_2"}, 65413, id="no-session"),
        pytest.param({"kf_account": "zz@gh", "openid": "o_1"}, 65401, id="unknown-agent"),
        pytest.param({"kf_account": "a@gh"}, 40003, id="no-openid"),
    ],
)
async def test_close_rules(
    api: RawAPI, agents: FakeWeChat, body: dict[str, Any], expected: int
) -> None:
    agents.user_says("o_1", queue=True)
    agents.agent_accepts("a@gh")
    before = len(agents.records)
    assert errcode(await api.post(CLOSE, body)) == expected
    if expected == 0:
        assert agents.sessions == {}
        closing = agents.records[before:]
        assert [(r.opercode, r.openid, r.text, r.worker) for r in closing] == [
            (1004, "o_1", body.get("text", ""), "a@gh")
        ]
    else:
        assert list(agents.sessions) == ["o_1"]
        assert len(agents.records) == before


async def test_get_session(api: RawAPI, agents: FakeWeChat) -> None:
    assert await api.get(GET, openid="o_1") == {"createtime": 0, "kf_account": ""}
    agents.clock.advance(5)
    agents.user_says("o_1", queue=True)
    assert await api.get(GET, openid="o_1") == {"createtime": 0, "kf_account": ""}
    agents.agent_accepts("b@gh")
    assert await api.get(GET, openid="o_1") == {"createtime": T0 + 5, "kf_account": "b@gh"}


@pytest.mark.parametrize("params", [{}, {"openid": ""}], ids=["missing", "empty"])
async def test_get_session_needs_an_openid(api: RawAPI, params: dict[str, str]) -> None:
    assert errcode(await api.get(GET, **params)) == 40003


async def test_session_list(api: RawAPI, agents: FakeWeChat) -> None:
    for openid in ("o_1", "o_2", "o_3"):
        agents.user_says(openid, queue=True)
    agents.agent_accepts("a@gh", "o_2")
    agents.clock.advance(7)
    agents.agent_accepts("a@gh", "o_1")
    agents.agent_accepts("b@gh", "o_3")
    assert await api.get(LIST, kf_account="a@gh") == {
        "sessionlist": [
            {"createtime": T0, "openid": "o_2"},
            {"createtime": T0 + 7, "openid": "o_1"},
        ]
    }
    assert await api.get(LIST, kf_account="off@gh") == {"sessionlist": []}


@pytest.mark.parametrize("params", [{"kf_account": "zz@gh"}, {}], ids=["unknown", "missing"])
async def test_session_list_needs_a_known_agent(
    api: RawAPI, agents: FakeWeChat, params: dict[str, str]
) -> None:
    assert errcode(await api.get(LIST, **params)) == 65401


async def test_wait_cases_oldest_first_with_latest_time(api: RawAPI, wechat: FakeWeChat) -> None:
    assert await api.get(WAIT) == {"count": 0, "waitcaselist": []}
    wechat.user_says("o_1", queue=True)
    wechat.clock.advance(3)
    wechat.user_says("o_2", queue=True)
    wechat.clock.advance(3)
    wechat.user_says("o_1", "still there?")
    wechat.user_says("o_3")  # not queued: nobody asked for customer service
    assert await api.get(WAIT) == {
        "count": 2,
        "waitcaselist": [
            {"latest_time": T0 + 6, "openid": "o_1"},
            {"latest_time": T0 + 3, "openid": "o_2"},
        ],
    }


async def test_wait_cases_list_100_but_count_all(api: RawAPI, wechat: FakeWeChat) -> None:
    for n in range(105):
        wechat.user_says(f"o_{n:03}", queue=True)
        wechat.clock.advance(1)
    answer = await api.get(WAIT)
    assert answer["count"] == 105
    assert [case["openid"] for case in answer["waitcaselist"]] == [f"o_{n:03}" for n in range(100)]


async def test_wait_cases_legacy_shape(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.legacy_waitcase_shape = True
    wechat.user_says("o_1", queue=True)
    wechat.clock.advance(4)
    wechat.user_says("o_1", "again")
    assert await api.get(WAIT) == {
        "count": 1,
        "waitcaselist": [{"openid": "o_1", "kf_account": "", "createtime": T0}],
    }
