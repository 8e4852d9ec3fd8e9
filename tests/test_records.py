"""``wx.records``: one page on the wire, and ``iter()`` over any range: tiling, paging, dedupe."""

from __future__ import annotations

import itertools
import tracemalloc
from datetime import datetime, timedelta, timezone
from typing import Final

import pytest
from cattrs.gen import make_dict_structure_fn
from hypothesis import given, settings
from hypothesis import strategies as st

from wechat_kf import AsyncWeChat, MalformedResponseError, OperCode, Record, ValidationError
from wechat_kf._converter import converter, structure
from wechat_kf.records import RecordPage
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

GET_MSG_LIST = "/customservice/msgrecord/getmsglist"
T0 = 1_700_000_000
DAY = 86400


def _seed(fake: FakeWeChat, times: list[int]) -> None:
    for n, t in enumerate(times):
        fake.add_record(f"user-{n}", 2002, f"text {n}", worker="kf_1@service", time=t)


async def test_page_on_the_wire_and_typed(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.add_record("user-1", 2002, " 您好，客服test1为您服务。", "test1@test", time=T0 + 10)
    fake.add_record("user-1", 9999, "a code WeChat adds tomorrow", "test1@test", time=T0 + 11)
    start = datetime.fromtimestamp(T0, timezone.utc)
    page = await wx.records.page(start, T0 + 3600, msgid=1, number=10)
    (request,) = fake.requests_to(GET_MSG_LIST)
    assert (
        request.body == f'{{"starttime":{T0},"endtime":{T0 + 3600},"msgid":1,"number":10}}'.encode()
    )
    assert page.number == 2
    first, second = page.records
    assert first == Record(
        openid="user-1",
        opercode=OperCode.AGENT_SENT_MESSAGE,
        text=" 您好，客服test1为您服务。",
        time=datetime.fromtimestamp(T0 + 10, timezone.utc),
        worker="test1@test",
    )
    assert second.opercode == 9999
    assert second.opercode.name == "UNKNOWN_9999"


@pytest.mark.parametrize(
    ("start", "end", "kwargs", "field"),
    [
        (T0, T0 + DAY + 1, {}, "end"),
        (T0 + 10, T0, {}, "end"),
        (T0, T0 + 10, {"number": 0}, "number"),
        (T0, T0 + 10, {"number": 10_001}, "number"),
        (T0, T0 + 10, {"msgid": 0}, "msgid"),
        (datetime(2024, 1, 1), T0, {}, "start"),  # naive: refused, never guessed
        (T0, datetime(2030, 1, 1), {}, "end"),
        (-5, T0, {}, "start"),
        ("2024-01-01", T0, {}, "start"),
    ],
)
async def test_page_validation(
    fake: FakeWeChat,
    wx: AsyncWeChat,
    start: object,
    end: object,
    kwargs: dict[str, int],
    field: str,
) -> None:
    with pytest.raises(ValidationError) as info:
        await wx.records.page(start, end, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert not fake.requests_to(GET_MSG_LIST)


async def test_page_defaults_and_limits_on_the_wire(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    await wx.records.page(T0, T0 + 10)
    await wx.records.page(T0, T0 + 10, msgid=2**63 - 1, number=1)
    first, last = (r.json() for r in fake.requests_to(GET_MSG_LIST))
    assert (first["msgid"], first["number"]) == (1, 10_000)
    assert (last["msgid"], last["number"]) == (2**63 - 1, 1)
    with pytest.raises(ValidationError, match="msgid"):
        await wx.records.page(T0, T0 + 10, msgid=2**63)
    with pytest.raises(ValidationError) as too_long:
        await wx.records.page(T0, T0 + DAY + 1)
    assert str(too_long.value) == "end: must be at most 24 hours (86400 s) after start; use iter()"
    with pytest.raises(ValidationError) as backwards:
        await wx.records.page(T0, T0 - 1)
    assert str(backwards.value) == "end: must not be before start"
    assert backwards.value.value == T0 - 1
    for number in (0, 10_001):
        with pytest.raises(ValidationError) as bad_number:
            await anext(wx.records.iter(T0, T0 + 10, number=number))
        assert bad_number.value.field == "number"
    with pytest.raises(ValidationError, match="end: must not be before start"):
        await anext(wx.records.iter(T0, T0 - 1))
    assert len(fake.requests_to(GET_MSG_LIST)) == 2


async def test_a_full_24h_window_and_a_single_second_are_allowed(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    assert (await wx.records.page(T0, T0 + DAY)).records == []
    _seed(fake, [T0])
    assert len((await wx.records.page(T0, T0)).records) == 1


@pytest.mark.parametrize("number", [1, 2, 3, 10_000])
async def test_identical_records_are_all_kept(
    fake: FakeWeChat, wx: AsyncWeChat, number: int
) -> None:
    # A user sending four photos in one second: four identical records, none a page repeat.
    for _ in range(4):
        fake.add_record("user-1", 2003, "[image]", "kf_1@service", time=T0 + 5)
    fake.add_record("user-1", 2002, "收到", "kf_1@service", time=T0 + 6)
    texts = [r.text async for r in wx.records.iter(T0, T0 + 100, number=number)]
    assert texts == ["[image]"] * 4 + ["收到"]


async def test_a_server_that_pages_after_the_msgid_loses_nothing(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    fake.records_msgid_inclusive = False
    _seed(fake, [T0 + n for n in range(5)])
    for _ in range(2):
        fake.add_record("user-x", 2003, "same", time=T0 + 50)
    texts = [r.text async for r in wx.records.iter(T0, T0 + 100, number=2)]
    assert texts == [f"text {n}" for n in range(5)] + ["same", "same"]


@pytest.mark.parametrize("inclusive", [True, False])
@pytest.mark.parametrize("number", [1, 2, 3, 10_000])
async def test_iter_pages_and_drops_boundary_repeats(
    fake: FakeWeChat, wx: AsyncWeChat, inclusive: bool, number: int
) -> None:
    fake.records_msgid_inclusive = inclusive
    _seed(fake, [T0 + n for n in range(7)])
    texts = [r.text async for r in wx.records.iter(T0, T0 + 100, number=number)]
    assert texts == [f"text {n}" for n in range(7)]


async def test_iter_tiles_a_month_with_no_gap_and_no_overlap(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    # Records on every window boundary second, and either side of it.
    times = sorted({T0 + k * DAY + d for k in range(31) for d in (-1, 0, 1)} - {T0 - 1})
    _seed(fake, times)
    end = T0 + 30 * DAY + 1
    got = [r.time async for r in wx.records.iter(T0, end)]
    assert got == [datetime.fromtimestamp(t, timezone.utc) for t in times if t <= end]
    windows = [r.json() for r in fake.requests_to(GET_MSG_LIST)]
    spans = [(w["starttime"], w["endtime"]) for w in windows if w["msgid"] == 1]
    assert spans[0][0] == T0
    assert spans[-1][1] == end
    for (_, prev_end), (next_start, _) in itertools.pairwise(spans):
        assert next_start == prev_end + 1  # no gap, no overlap
    assert all(e - s < DAY for s, e in spans)


@pytest.mark.parametrize("days", [0, 1, 2])
async def test_iter_keeps_the_last_second_when_a_window_starts_at_end(
    fake: FakeWeChat, wx: AsyncWeChat, days: int
) -> None:
    # end - start a whole number of days: the last 24 h window is the one second at ``end``.
    end = T0 + days * DAY
    times = sorted({T0 - 1, T0, end - 1, end, end + 1})
    _seed(fake, times)
    got = [r.time async for r in wx.records.iter(T0, end)]
    assert got == [datetime.fromtimestamp(t, timezone.utc) for t in times if T0 <= t <= end]
    spans = [(w["starttime"], w["endtime"]) for w in map(_body, fake.requests_to(GET_MSG_LIST))]
    assert spans == [(T0 + k * DAY, T0 + (k + 1) * DAY - 1) for k in range(days)] + [(end, end)]


def _body(request: object) -> dict[str, int]:
    return request.json()  # type: ignore[attr-defined,no-any-return]


async def test_iter_accepts_aware_datetimes(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    _seed(fake, [T0 + 5])
    start = datetime.fromtimestamp(T0, timezone(timedelta(hours=8)))  # Beijing time
    records = [r async for r in wx.records.iter(start, start + timedelta(days=3))]
    assert len(records) == 1


async def test_iter_streams_with_flat_memory(fake: FakeWeChat) -> None:
    # 30,000 records over a month, paged 500 at a time: only a page is ever held.
    _seed(fake, [T0 + n * 86 for n in range(30_000)])
    async with fake.client() as wx:
        count = 0
        tracemalloc.start()
        try:
            async for _ in wx.records.iter(T0, T0 + 31 * DAY, number=500):
                count += 1
                if count == 1000:
                    tracemalloc.reset_peak()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert count == 30_000
    assert peak < 5_000_000  # far below 30,000 records held at once


# ---------------------------------------------------------------- the direct structuring hook

_wire_values = (
    st.integers(-5, 3_000_000_000)
    | st.integers(-5, 3_000_000_000).map(str)
    | st.sampled_from([None, True, 1.0, 1.5, "", " 7 ", "x", 10**30, [], {}])
    | st.text(max_size=5)
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["openid", "opercode", "text", "time", "worker", "extra"]),
        _wire_values,
    )
)
def test_record_hook_agrees_with_the_generic_converter(wire: dict[str, object]) -> None:
    # records.py builds Record directly (it is the hot path of iter()); the generic cattrs
    # hook for the same class is the oracle: same record, or both refuse.
    generic = make_dict_structure_fn(Record, converter)
    try:
        expected: Record | None = generic(wire, Record)
    except Exception:
        expected = None
    try:
        got: Record | None = structure(wire, Record)
    except MalformedResponseError:
        got = None
    assert got == expected
    if got is not None:
        assert type(got.opercode) is OperCode


_GOOD: Final = {"openid": "o", "opercode": 2002, "time": T0}


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({**_GOOD, "openid": []}, "openid: expected a string, got list"),
        ({**_GOOD, "opercode": "x"}, "opercode: expected an integer, got str"),
        ({**_GOOD, "opercode": True}, "opercode: expected an integer, got True"),
        ({**_GOOD, "opercode": []}, "opercode: expected an integer, got list"),
        ({**_GOOD, "time": True}, "time: expected an integer, got True"),
        ({**_GOOD, "time": 10**30}, "time: "),
        ({**_GOOD, "text": 1.5}, "text: expected a string, got float"),
        ({**_GOOD, "worker": None}, "worker: expected a string, got NoneType"),
        ({"opercode": 2002, "time": T0}, "\"record without 'openid'\""),
        ({"openid": "o", "time": T0}, "\"record without 'opercode'\""),
        ({"openid": "o", "opercode": 2002}, "\"record without 'time'\""),
        (5, "a record must be an object, got int"),
    ],
)
def test_a_bad_record_is_named_with_its_field(record: object, reason: str) -> None:
    with pytest.raises(MalformedResponseError) as caught:
        structure({"recordlist": [_GOOD, record]}, RecordPage)
    assert str(caught.value).startswith(
        f"response does not match RecordPage: recordlist[1]: {reason}"
    )


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ([], "the answer must be an object, got list"),
        ({"recordlist": {}}, "recordlist must be a list, got dict"),
        ({"number": "x"}, "expected an integer, got str"),
        ({"msgid": None}, "expected an integer, got NoneType"),
    ],
)
def test_a_bad_page_says_why(answer: object, reason: str) -> None:
    with pytest.raises(MalformedResponseError) as caught:
        structure(answer, RecordPage)
    assert str(caught.value) == f"response does not match RecordPage: {reason}"


def test_page_hook_names_the_bad_record() -> None:
    good = {"openid": "o", "opercode": 2002, "time": T0}
    with pytest.raises(MalformedResponseError, match=r"recordlist\[1\].*time"):
        structure({"recordlist": [good, {**good, "time": "soon"}]}, RecordPage)
    assert structure({}, RecordPage) == RecordPage()
    page = structure({"recordlist": [good], "number": "1", "msgid": "9"}, RecordPage)
    assert (page.number, page.msgid, page.records[0].text) == (1, 9, "")
