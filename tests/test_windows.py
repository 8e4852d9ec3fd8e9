"""``wx.windows``: the service-window ledger against the fake WeChat.

The fake enforces WeChat's window rules on every send and records the push of every user
interaction; the tests feed those pushes to the ledger (as the callback endpoint does) and
check that its answers match what the fake then accepts.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import pytest

from tests.conftest import SleepRecorder
from tests.testing.fake_http import T0, FrozenClock
from wechat_kf import (
    WINDOW_RULES,
    AsyncWeChat,
    Interaction,
    MemoryWindowStore,
    RateLimiter,
    ResponseQuotaError,
    ResponseWindowError,
    SendControl,
    SendStatus,
    Text,
    UnreachableError,
    ValidationError,
    WindowStoreError,
)
from wechat_kf._defaults import WINDOW_MEMORY
from wechat_kf._window_rules import interaction_of
from wechat_kf.callback._messages import incoming_from_fields
from wechat_kf.callback._xml import parse_fields
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

SEND = "/cgi-bin/message/custom/send"
HOUR = 3600.0
USER = "o_user1"


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


@pytest.fixture
def fake() -> FakeWeChat:
    return FakeWeChat(clock=FrozenClock(T0))


@pytest.fixture
async def wx(fake: FakeWeChat, sleeps: SleepRecorder) -> AsyncIterator[AsyncWeChat]:
    async with fake.client(sleep=sleeps) as client:
        yield client


async def feed(wx: AsyncWeChat, fake: FakeWeChat) -> None:
    """Every push the fake made since the last call, through the ledger (as the endpoint)."""
    while fake.pushes:
        push = fake.pushes.popleft()
        await wx.windows.observe(incoming_from_fields(parse_fields(push.xml)))


def sends(fake: FakeWeChat) -> int:
    return len(fake.requests_to(SEND))


# ---------------------------------------------------------------------- the rules


def test_the_rules_table() -> None:
    rules = {rule.window: rule for rule in WINDOW_RULES}
    assert set(rules) == {"message", "event"}
    message, event = rules["message"], rules["event"]
    assert (message.messages, message.duration) == (5, timedelta(hours=48))
    assert message.opened_by == {Interaction.MESSAGE}
    assert (event.messages, event.duration) == (3, timedelta(minutes=1))
    assert event.opened_by == {Interaction.MENU_CLICK, Interaction.FOLLOW, Interaction.QR_SCAN}
    assert {rule.announced.isoformat() for rule in WINDOW_RULES} == {"2023-05-30"}


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"MsgType": "text"}, Interaction.MESSAGE),
        ({"MsgType": "image"}, Interaction.MESSAGE),
        ({"MsgType": "voice"}, Interaction.MESSAGE),
        ({"MsgType": "shortvideo"}, Interaction.MESSAGE),
        ({"MsgType": "location"}, Interaction.MESSAGE),
        ({"MsgType": "link"}, Interaction.MESSAGE),
        ({"MsgType": "miniprogrampage"}, Interaction.MESSAGE),  # a type we do not model
        ({"MsgType": "text", "bizmsgmenuid": "101"}, Interaction.MENU_CLICK),
        ({"MsgType": "text", "bizmsgmenuid": " "}, Interaction.MESSAGE),
        ({"MsgType": "event", "Event": "CLICK"}, Interaction.MENU_CLICK),
        ({"MsgType": "event", "Event": "scancode_push"}, Interaction.MENU_CLICK),
        ({"MsgType": "event", "Event": "scancode_waitmsg"}, Interaction.MENU_CLICK),
        ({"MsgType": "event", "Event": "subscribe"}, Interaction.FOLLOW),
        ({"MsgType": "event", "Event": "SCAN"}, Interaction.QR_SCAN),
        ({"MsgType": "event", "Event": "VIEW"}, None),
        ({"MsgType": "event", "Event": "location_select"}, None),
        ({"MsgType": "event", "Event": "pic_sysphoto"}, None),
        ({"MsgType": "event", "Event": "LOCATION"}, None),
        ({"MsgType": "event", "Event": "unsubscribe"}, None),
        ({"MsgType": "event", "Event": "kf_create_session"}, None),
        ({"MsgType": "event"}, None),
        ({}, None),
    ],
)
def test_which_pushes_open_a_window(fields: dict[str, str], kind: Interaction | None) -> None:
    assert interaction_of(fields) is kind


# ---------------------------------------------------------------------- answers


async def test_an_unknown_user_is_neither_reachable_nor_unreachable(wx: AsyncWeChat) -> None:
    status = await wx.windows.get(USER)
    assert not status.known
    assert status.reachable is None
    assert status.messages_left is None
    assert status.reason is None
    assert status.until is None


async def test_a_user_message_opens_5_messages_for_48_hours(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    fake.user_says(USER)
    await feed(wx, fake)
    status = await wx.windows.get(USER)
    assert (status.reachable, status.messages_left, status.until) == (True, 5, at(T0 + 48 * HOUR))
    [window] = status.windows
    assert (window.window, window.opened_at, window.messages_left) == ("message", at(T0), 5)


async def test_sends_spend_and_the_ledger_matches_what_wechat_accepts(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    fake.user_says(USER)
    await feed(wx, fake)
    for left in (4, 3, 2, 1, 0):
        await wx.message.send(USER, Text(content="hi"))
        assert (await wx.windows.get(USER)).messages_left == left
    status = await wx.windows.get(USER)
    assert (status.reachable, status.reason, status.until) == (
        False,
        "no_messages_left",
        at(T0 + 48 * HOUR),
    )
    with pytest.raises(ResponseQuotaError):  # the fake agrees
        await wx.message.send(USER, Text(content="hi"))
    fake.clock.advance(48 * HOUR)
    status = await wx.windows.get(USER)
    assert (status.reachable, status.reason, status.until) == (
        False,
        "outside_window",
        at(T0 + 48 * HOUR),
    )
    with pytest.raises(ResponseWindowError):
        await wx.message.send(USER, Text(content="hi"))


async def test_send_with_skip_unreachable_reserves_in_the_ledger_first(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    with pytest.raises(ResponseWindowError):  # unknown to the ledger: sent, WeChat decides
        await wx.message.send("o_stranger", Text(content="hi"), skip_unreachable=True)
    assert len(fake.requests_to(SEND)) == 1
    fake.user_says(USER)
    await feed(wx, fake)
    unreachable: list[str] = []

    async def send_or_unreachable() -> None:
        try:
            await wx.message.send(USER, Text(content="hi"), skip_unreachable=True)
        except UnreachableError as exc:
            unreachable.append(exc.reason)

    async with anyio.create_task_group() as group:  # 8 at once: the window allows 5
        for _ in range(8):
            group.start_soon(send_or_unreachable)
    assert len(fake.sent_to(USER)) == 5
    assert unreachable == ["no_messages_left"] * 3
    requests = len(fake.requests_to(SEND))
    with pytest.raises(UnreachableError) as info:
        await wx.message.send(USER, Text(content="hi"), skip_unreachable=True)
    assert info.value.until == at(T0 + 48 * HOUR)
    assert len(fake.requests_to(SEND)) == requests  # no request made
    fake.clock.advance(48 * HOUR)
    with pytest.raises(UnreachableError, match="outside their service window"):
        await wx.message.send(USER, Text(content="hi"), skip_unreachable=True)
    assert len(fake.requests_to(SEND)) == requests


async def test_menu_click_then_message_spends_the_shorter_window_first(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    fake.user_says(USER)
    fake.user_clicks_menu(USER, "BUY")
    await feed(wx, fake)
    assert (await wx.windows.get(USER)).messages_left == 8
    await wx.message.send(USER, Text(content="hi"))
    status = await wx.windows.get(USER)
    assert [(w.window, w.messages_left) for w in status.windows] == [("event", 2), ("message", 5)]
    assert status.until == at(T0 + 48 * HOUR)
    fake.clock.advance(60)
    assert (await wx.windows.get(USER)).messages_left == 5


async def test_wechat_corrects_a_user_the_ledger_did_not_know(wx: AsyncWeChat) -> None:
    with pytest.raises(ResponseWindowError):
        await wx.message.send(USER, Text(content="hi"))
    status = await wx.windows.get(USER)
    assert (status.known, status.reachable, status.reason, status.errcode) == (
        True,
        False,
        "outside_window",
        45015,
    )
    assert status.checked_at == at(T0)


async def test_a_45047_after_a_missed_send_corrects_the_count(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    """Another system spent the window (sends the ledger never saw): WeChat's 45047 makes the
    ledger say unreachable at once, and the next user message reopens it."""
    fake.user_says(USER)
    await feed(wx, fake)
    fake.users[USER].windows["message"].sends_left = 0  # spent elsewhere
    assert (await wx.windows.get(USER)).reachable is True
    with pytest.raises(ResponseQuotaError):
        await wx.message.send(USER, Text(content="hi"))
    status = await wx.windows.get(USER)
    assert (status.reachable, status.reason, status.messages_left) == (
        False,
        "no_messages_left",
        0,
    )
    fake.clock.advance(5)
    fake.user_says(USER)
    await feed(wx, fake)
    assert (await wx.windows.get(USER)).messages_left == 5
    await wx.message.send(USER, Text(content="hi"))


async def test_an_accepted_send_the_ledger_did_not_expect_makes_the_user_unknown(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    with pytest.raises(ResponseWindowError):
        await wx.message.send(USER, Text(content="hi"))
    fake.user_says(USER)  # a push that never reached the ledger
    fake.pushes.clear()
    await wx.message.send(USER, Text(content="hi"))
    assert not (await wx.windows.get(USER)).known


async def test_a_push_seen_twice_opens_the_window_once(wx: AsyncWeChat, fake: FakeWeChat) -> None:
    fake.user_says(USER)
    push = incoming_from_fields(parse_fields(fake.pushes.popleft().xml))
    assert await wx.windows.observe(push) is True
    await wx.message.send(USER, Text(content="hi"))
    assert await wx.windows.observe(push) is False  # WeChat's retry of the same push
    assert (await wx.windows.get(USER)).messages_left == 4


async def test_pushes_that_open_no_window_are_ignored(wx: AsyncWeChat, fake: FakeWeChat) -> None:
    fake.user_clicks_menu(USER, "https://example.com", event="VIEW")
    fake.user_event(USER, "unsubscribe")
    await feed(wx, fake)
    assert not (await wx.windows.get(USER)).known


async def test_a_window_opens_at_the_push_time_not_when_it_is_read(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    fake.user_follows(USER)
    fake.clock.advance(50)  # the push was handled late
    await feed(wx, fake)
    status = await wx.windows.get(USER)
    assert status.until == at(T0 + 60)
    fake.clock.advance(10)
    assert (await wx.windows.get(USER)).reachable is False


async def test_the_ledger_forgets_a_user_after_its_memory(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    fake.user_says(USER)
    await feed(wx, fake)
    fake.clock.advance(48 * HOUR + WINDOW_MEMORY - 1)
    assert (await wx.windows.get(USER)).reason == "outside_window"
    fake.clock.advance(2)
    assert not (await wx.windows.get(USER)).known


# ---------------------------------------------------------------------- opened by hand


async def test_interactions_recorded_by_hand(wx: AsyncWeChat, fake: FakeWeChat) -> None:
    assert await wx.windows.opened(USER, at=at(T0 - 10), kind=Interaction.MENU_CLICK) is True
    status = await wx.windows.get(USER)
    assert [(w.window, w.messages_left, w.until) for w in status.windows] == [
        ("event", 3, at(T0 + 50))
    ]
    assert await wx.windows.opened(USER, at=T0 - 10, kind="menu_click") is False  # same again
    assert await wx.windows.opened("o_user2") is True  # a message, now
    assert (await wx.windows.get("o_user2")).until == at(T0 + 48 * HOUR)
    assert await wx.windows.opened("o_user3", at=at(T0 + HOUR)) is True  # ahead of our clock
    assert (await wx.windows.get("o_user3")).until == at(T0 + 48 * HOUR)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"at": datetime(2024, 1, 1)}, "at"),
        ({"at": "yesterday"}, "at"),
        ({"at": True}, "at"),
        ({"kind": "payment"}, "kind"),
    ],
)
async def test_bad_interactions_are_refused(
    wx: AsyncWeChat, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await wx.windows.opened(USER, **kwargs)
    assert caught.value.field == field


@pytest.mark.parametrize("openid", ["", "o user", "x" * 129])
async def test_bad_openids_are_refused(wx: AsyncWeChat, openid: str) -> None:
    with pytest.raises(ValidationError):
        await wx.windows.get(openid)
    with pytest.raises(ValidationError):
        await wx.windows.opened(openid)


async def test_forget(wx: AsyncWeChat) -> None:
    await wx.windows.opened(USER)
    await wx.windows.forget(USER)
    assert not (await wx.windows.get(USER)).known


async def test_the_area_shows_no_state_in_its_repr(wx: AsyncWeChat) -> None:
    await wx.windows.opened(USER)
    assert repr(wx.windows) == "<WindowsAPI>"


# ---------------------------------------------------------------------- reachable, sharing


async def test_reachable_streams_exactly_the_users_with_messages_left(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    fake.user_says("o_old")
    fake.clock.advance(49 * HOUR)
    fake.user_says("o_open")
    fake.user_follows("o_event")
    fake.user_says("o_used")
    await feed(wx, fake)
    for _ in range(5):
        await wx.message.send("o_used", Text(content="hi"))
    assert sorted([openid async for openid in wx.windows.reachable()]) == ["o_event", "o_open"]
    fake.clock.advance(60)
    assert [openid async for openid in wx.windows.reachable()] == ["o_open"]


async def test_with_options_copies_share_the_ledger(wx: AsyncWeChat, fake: FakeWeChat) -> None:
    fake.user_says(USER)
    await feed(wx, fake)
    await wx.with_options(timeout=3).message.send(USER, Text(content="hi"))
    assert (await wx.windows.get(USER)).messages_left == 4
    assert wx.with_options(max_retries=0).windows.rules is WINDOW_RULES


async def test_each_client_has_its_own_ledger_unless_they_share_a_store(fake: FakeWeChat) -> None:
    store = MemoryWindowStore()
    async with (
        fake.client() as a,
        fake.client() as b,
        fake.client(window_store=store) as c,
        fake.client(window_store=store) as d,
    ):
        await a.windows.opened(USER)
        await c.windows.opened(USER)
        assert (await b.windows.get(USER)).known is False
        assert (await d.windows.get(USER)).known is True


class BrokenStore(MemoryWindowStore):
    """A window store whose backend is down."""

    calls = 0

    async def spend(self, *args: Any, **kwargs: Any) -> Any:
        BrokenStore.calls += 1
        raise WindowStoreError("Redis window spend for wx failed: ConnectionError: refused")

    async def correct(self, *args: Any, **kwargs: Any) -> None:
        raise WindowStoreError("Redis window correction for wx failed: ConnectionError")


async def test_a_failing_store_never_fails_a_send(
    fake: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    fake.user_says(USER)
    async with fake.client(window_store=BrokenStore()) as wx:
        with caplog.at_level(logging.WARNING, logger="wechat_kf"):
            await wx.message.send(USER, Text(content="one"))
            await wx.message.send(USER, Text(content="two"))
            report = await wx.message.send_many(
                ["o_x", USER], Text(content="three"), skip_unreachable=True
            )
    assert [r.status for r in report.results] == [SendStatus.FAILED, SendStatus.SENT]
    assert len(fake.sent_to(USER)) == 3
    warnings = [r for r in caplog.records if "window ledger" in r.getMessage()]
    assert len(warnings) == 1  # at most once a minute
    assert "the send goes ahead" in warnings[0].getMessage()


# ---------------------------------------------------------------------- skip_unreachable


async def test_skip_unreachable_skips_only_what_the_ledger_knows(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    fake.user_says("o_closed")
    fake.clock.advance(49 * HOUR)
    fake.user_says("o_open")
    fake.user_says("o_used")
    await feed(wx, fake)
    for _ in range(5):
        await wx.message.send("o_used", Text(content="hi"))
    before = sends(fake)
    report = await wx.message.send_many(
        ["o_closed", "o_open", "o_used", "o_unknown"], Text(content="notice"), skip_unreachable=True
    )
    statuses = [(r.openid, r.status) for r in report.results]
    assert statuses == [
        ("o_closed", SendStatus.SKIPPED),
        ("o_open", SendStatus.SENT),
        ("o_used", SendStatus.SKIPPED),
        ("o_unknown", SendStatus.FAILED),  # unknown is not unreachable: sent, and WeChat refused
    ]
    assert sends(fake) - before == 2
    closed, used = report.results[0].error, report.results[2].error
    assert isinstance(closed, UnreachableError)
    assert closed.reason == "outside_window"
    assert closed.until == at(T0 + 48 * HOUR)
    assert "outside their service window" in str(closed)
    assert isinstance(used, UnreachableError)
    assert used.reason == "no_messages_left"
    assert report.results[0].errcode is None
    assert (await wx.windows.get("o_unknown")).reason == "outside_window"  # learnt
    again = await wx.message.send_many(["o_unknown"], Text(content="notice"), skip_unreachable=True)
    assert again.skipped == 1


async def test_without_skip_unreachable_everyone_is_sent_to(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    fake.user_says("o_closed")
    fake.clock.advance(49 * HOUR)
    await feed(wx, fake)
    report = await wx.message.send_many(["o_closed"], Text(content="notice"))
    assert report.results[0].errcode == 45015
    assert sends(fake) == 1


async def test_a_reserved_message_refused_for_another_reason_is_given_back(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    fake.user_says(USER)
    await feed(wx, fake)
    fake.inject(SEND, errcode=40003, errmsg="invalid openid")
    report = await wx.message.send_many([USER], Text(content="x"), skip_unreachable=True)
    assert report.results[0].errcode == 40003
    assert (await wx.windows.get(USER)).messages_left == 5


async def test_a_reserved_message_whose_outcome_is_unknown_stays_spent(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    fake.user_says(USER)
    await feed(wx, fake)
    fake.inject(SEND, reset=True)  # it reached WeChat, the answer was lost
    report = await wx.message.send_many([USER], Text(content="x"), skip_unreachable=True)
    assert report.results[0].status is SendStatus.UNKNOWN
    assert (await wx.windows.get(USER)).messages_left == 4
    assert fake.users[USER].windows["message"].sends_left == 4  # both agree


async def test_a_stopped_send_gives_back_the_messages_it_reserved(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    for openid in ("o_a", "o_b", "o_c"):
        fake.user_says(openid)
    await feed(wx, fake)
    control = SendControl()

    async def sleep(seconds: float) -> None:  # the rate limiter's wait: stop the run there
        control.stop()
        await anyio.sleep_forever()

    report = await wx.message.send_many(
        ["o_a", "o_b", "o_c"],
        Text(content="x"),
        skip_unreachable=True,
        rate=RateLimiter(1, sleep=sleep),
        max_concurrency=3,
        control=control,
    )
    assert report.sent == 1
    assert report.skipped == 2
    left = {
        openid: (await wx.windows.get(openid)).messages_left for openid in ("o_a", "o_b", "o_c")
    }
    sent = report.with_status("sent")[0].openid
    assert left == {openid: 4 if openid == sent else 5 for openid in left}


async def test_a_cancelled_send_gives_back_the_messages_it_reserved(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    openids = ["o_a", "o_b", "o_c"]
    for openid in openids:
        fake.user_says(openid)
    await feed(wx, fake)
    control = SendControl()
    with anyio.CancelScope() as scope:

        async def sleep(seconds: float) -> None:  # the rate limiter's wait: cancel the caller
            scope.cancel()
            await anyio.sleep_forever()

        await wx.message.send_many(
            openids,
            Text(content="x"),
            skip_unreachable=True,
            rate=RateLimiter(1, sleep=sleep),
            max_concurrency=3,
            control=control,
        )
    report = control.report
    assert report is not None
    assert report.sent == 1
    assert report.skipped >= 1  # cancelled while waiting for the rate: their requests never left
    left = {openid: (await wx.windows.get(openid)).messages_left for openid in openids}
    sent = report.with_status("sent")[0].openid
    assert left == {openid: 4 if openid == sent else 5 for openid in openids}


async def test_concurrent_bulk_sends_never_spend_more_than_the_window(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    """Three campaigns at once, each to the same user 4 times: 5 requests in all, the rest
    skipped, and WeChat never answers 45047."""
    fake.user_says(USER)
    await feed(wx, fake)
    reports = []

    async def campaign() -> None:
        reports.append(
            await wx.message.send_many([USER] * 4, Text(content="x"), skip_unreachable=True)
        )

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(campaign)
    assert sum(r.sent for r in reports) == 5
    assert sum(r.skipped for r in reports) == 7
    assert sum(r.failed for r in reports) == 0
    assert sends(fake) == 5


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the size costs; trio runs the rest
async def test_10000_recipients_30_percent_outside_their_window(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    """The campaign the issue describes: ~7,000 requests, not 10,000; the rest skipped."""
    outside = [f"o_old{i:05d}" for i in range(3000)]
    inside = [f"o_new{i:05d}" for i in range(7000)]
    for openid in outside:
        fake.user_says(openid)
    fake.clock.advance(49 * HOUR)
    for openid in inside:
        fake.user_says(openid)
    await feed(wx, fake)
    recipients = outside + inside
    random.Random(15).shuffle(recipients)
    before = sends(fake)
    report = await wx.message.send_many(
        recipients, Text(content="Sale ends tonight"), skip_unreachable=True, max_concurrency=32
    )
    assert sends(fake) - before == 7000
    assert (report.sent, report.skipped, report.failed, report.unknown) == (7000, 3000, 0, 0)
    skipped = report.with_status("skipped")
    assert {r.openid for r in skipped} == set(outside)
    assert all(
        isinstance(r.error, UnreachableError) and r.error.reason == "outside_window"
        for r in skipped
    )


async def test_stream_many_skips_unreachable_too(wx: AsyncWeChat, fake: FakeWeChat) -> None:
    fake.user_says("o_closed")
    fake.clock.advance(49 * HOUR)
    fake.user_says("o_open")
    await feed(wx, fake)
    async with wx.message.stream_many(
        ["o_closed", "o_open"], Text(content="x"), skip_unreachable=True
    ) as results:
        seen = {r.openid: r.status async for r in results}
    assert seen == {"o_closed": SendStatus.SKIPPED, "o_open": SendStatus.SENT}
    assert sends(fake) == 1


async def test_the_campaign_example(wx: AsyncWeChat, fake: FakeWeChat) -> None:
    """The campaign of the service-windows page: everyone reachable now, and nobody else."""
    for i in range(10):
        fake.user_says(f"o_user{i}")
    await feed(wx, fake)
    for _ in range(5):
        await wx.message.send("o_user3", Text(content="hi"))
    before = sends(fake)
    recipients = wx.windows.reachable()
    report = await wx.message.send_many(
        recipients, Text(content="Sale ends tonight"), skip_unreachable=True
    )
    assert (report.sent, report.total) == (9, 9)
    assert sends(fake) - before == 9


async def test_a_busy_answer_that_may_have_been_sent_keeps_the_reservation(
    wx: AsyncWeChat, fake: FakeWeChat
) -> None:
    """busy_is_unknown: a -1 may have reached the user, so its message stays spent."""
    fake.user_says(USER)
    await feed(wx, fake)
    fake.inject(SEND, errcode=-1, errmsg="system error")
    report = await wx.message.send_many(
        [USER], Text(content="x"), skip_unreachable=True, busy_is_unknown=True
    )
    assert report.results[0].status is SendStatus.UNKNOWN
    assert (await wx.windows.get(USER)).messages_left == 4
