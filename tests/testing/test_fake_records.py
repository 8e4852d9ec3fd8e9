"""The fake's chat records over raw HTTP: query rules, time bounds, ``msgid`` paging."""

from __future__ import annotations

from typing import Any

import pytest

from tests.testing.fake_http import T0, RawAPI, errcode
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

RECORDS = "/customservice/msgrecord/getmsglist"
DAY = 86400


def query(start: Any = T0, end: Any = T0 + 100, msgid: Any = 1, number: Any = 10) -> dict[str, Any]:
    return {"starttime": start, "endtime": end, "msgid": msgid, "number": number}


def record(n: int, time: int = T0) -> dict[str, Any]:
    return {"openid": f"o_{n}", "opercode": 2001, "text": f"m{n}", "time": time, "worker": ""}


def seed(wechat: FakeWeChat, count: int, time: int = T0) -> None:
    for n in range(1, count + 1):
        wechat.add_record(f"o_{n}", 2001, f"m{n}", time=time)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(query(), 0, id="ok"),
        pytest.param(query(end=T0 + DAY), 0, id="24h"),
        pytest.param(query(end=T0 + DAY + 1), 65417, id="24h+1"),
        pytest.param(query(end=T0), 0, id="one-second"),
        pytest.param(query(end=T0 - 1), 65416, id="end-before-start"),
        pytest.param(query(number=0), 65416, id="number-0"),
        pytest.param(query(number=10000), 0, id="number-10000"),
        pytest.param(query(number=10001), 65416, id="number-10001"),
        pytest.param(query(msgid=0), 65416, id="msgid-0"),
        pytest.param(query(msgid="1"), 65416, id="msgid-string"),
        pytest.param(query(number=True), 65416, id="number-bool"),
        pytest.param(query(start=None), 65416, id="start-null"),
        pytest.param(query(end=float(T0 + 1)), 65416, id="end-float"),
        pytest.param({"starttime": T0, "endtime": T0 + 1, "number": 1}, 65416, id="no-msgid"),
        pytest.param({}, 65416, id="empty"),
    ],
)
async def test_query_rules(api: RawAPI, body: dict[str, Any], expected: int) -> None:
    answer = await api.post(RECORDS, body)
    if expected == 0:
        assert answer == {"recordlist": [], "number": 0, "msgid": body["msgid"]}
    else:
        assert errcode(answer) == expected


async def test_time_bounds_are_inclusive(api: RawAPI, wechat: FakeWeChat) -> None:
    for n, time in enumerate((T0 - 1, T0, T0 + 50, T0 + 100, T0 + 101), start=1):
        wechat.add_record(f"o_{n}", 2001, f"m{n}", time=time)
    assert await api.post(RECORDS, query()) == {
        "recordlist": [record(2), record(3, T0 + 50), record(4, T0 + 100)],
        "number": 3,
        "msgid": 4,
    }


@pytest.mark.parametrize(
    ("inclusive", "pages"),
    [
        (True, [(1, [1, 2], 2), (2, [2, 3], 3), (3, [3, 4], 4), (4, [4, 5], 5), (5, [5], 5)]),
        (False, [(1, [1, 2], 3), (3, [3, 4], 5), (5, [5], 6), (6, [], 6)]),
    ],
    ids=["msgid-inclusive", "msgid-exclusive"],
)
async def test_paging_by_msgid(
    api: RawAPI, wechat: FakeWeChat, inclusive: bool, pages: list[tuple[int, list[int], int]]
) -> None:
    wechat.records_msgid_inclusive = inclusive
    seed(wechat, 5)
    for msgid, ids, next_msgid in pages:
        assert await api.post(RECORDS, query(msgid=msgid, number=2)) == {
            "recordlist": [record(n) for n in ids],
            "number": len(ids),
            "msgid": next_msgid,
        }


async def test_msgid_skips_earlier_records_even_in_range(api: RawAPI, wechat: FakeWeChat) -> None:
    seed(wechat, 3)
    wechat.add_record("o_4", 2001, "m4", time=T0 + DAY * 2)
    wechat.add_record("o_5", 2001, "m5", time=T0)
    answer = await api.post(RECORDS, query(msgid=3))
    assert answer == {"recordlist": [record(3), record(5)], "number": 2, "msgid": 5}


async def test_records_of_a_conversation(api: RawAPI, wechat: FakeWeChat) -> None:
    wechat.add_agent("a@gh", online=True)
    wechat.user_says("o_1", "hello", queue=True)
    wechat.agent_accepts("a@gh")
    wechat.user_says("o_1", "are you there?")
    body = {"touser": "o_1", "msgtype": "image", "image": {"media_id": wechat.add_media().media_id}}
    assert (await api.post("/cgi-bin/message/custom/send", body))["errcode"] == 0
    answer = await api.post(RECORDS, query())
    assert [(r["opercode"], r["text"], r["worker"]) for r in answer["recordlist"]] == [
        (2001, "hello", ""),
        (1000, "", ""),
        (1001, "", "a@gh"),
        (2003, "are you there?", "a@gh"),
        (2002, "[image]", ""),
    ]
