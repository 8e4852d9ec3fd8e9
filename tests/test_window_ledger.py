"""The window ledger itself: what identifies a push, its answers, and a store that fails or waits.

These tests drive :class:`~wechat_kf._window_ledger.WindowLedger` directly on a frozen clock,
with the memory store or a small :class:`~wechat_kf.WindowStore` written here (a user's store is
a real part of the SDK: one that is down, or slow, is what the ledger must survive). The ledger
against the fake WeChat is tests/test_windows.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import anyio
import pytest

from tests.testing.fake_http import T0, FrozenClock
from wechat_kf import (
    WINDOW_RULES,
    Interaction,
    MemoryWindowStore,
    ResponseQuotaError,
    ResponseWindowError,
    UnreachableError,
    ValidationError,
    WindowStoreError,
)
from wechat_kf._errors import ConnectionLostError
from wechat_kf._window_ledger import Reservation, WindowLedger
from wechat_kf._window_store import Spend, SpendOutcome
from wechat_kf.callback._messages import incoming_from_fields

pytestmark = pytest.mark.anyio

USER = "o_user1"
APPID = "wx_ledger"
HOUR = 3600.0


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def ledger(clock: FrozenClock) -> WindowLedger:
    return WindowLedger(appid=APPID, store=MemoryWindowStore(), clock=clock.now)


def push(**fields: str) -> Any:
    """A parsed push of ``USER`` at ``T0`` with ``fields`` (a text message by default)."""
    base = {"ToUserName": "gh_account", "FromUserName": USER, "CreateTime": str(T0)}
    return incoming_from_fields({**base, "MsgType": "text", "Content": "hi", **fields})


async def left(ledger: WindowLedger, openid: str = USER) -> int | None:
    return (await ledger.status(openid)).messages_left


async def accepted() -> str:
    return "ok"


# ---------------------------------------------------------------------- what identifies a push


async def test_the_same_message_observed_twice_counts_once(ledger: WindowLedger) -> None:
    message = push(MsgId="1001")
    assert await ledger.observe(message) is True
    await ledger.send(USER, accepted)
    assert await ledger.observe(message) is False  # WeChat's retry of the same push
    assert await left(ledger) == 4


async def test_two_messages_in_the_same_second_renew_the_window(ledger: WindowLedger) -> None:
    assert await ledger.observe(push(MsgId="1001")) is True
    await ledger.send(USER, accepted)
    assert await ledger.observe(push(MsgId="1002")) is True
    assert await left(ledger) == 5


EVENT = {"MsgType": "event", "Event": "CLICK", "EventKey": "BUY"}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"MsgType": "text"}, {"MsgType": "image", "PicUrl": "u", "MediaId": "m"}),
        (EVENT, {**EVENT, "Event": "scancode_push"}),
        (EVENT, {**EVENT, "EventKey": "SELL"}),
        ({"MsgType": "event", "Event": "subscribe"}, {"MsgType": "event", "Event": "SCAN"}),
        # A blank MsgId identifies nothing: the pushes are told apart by their type and key.
        ({**EVENT, "MsgId": " "}, {**EVENT, "EventKey": "SELL", "MsgId": " "}),
    ],
    ids=["by-msgtype", "by-event", "by-eventkey", "no-eventkey", "blank-msgid"],
)
async def test_pushes_without_a_msgid_are_told_apart_by_type_event_and_key(
    ledger: WindowLedger, first: dict[str, str], second: dict[str, str]
) -> None:
    assert await ledger.observe(push(**first)) is True
    await ledger.send(USER, accepted)
    assert await ledger.observe(push(**first)) is False  # the same push again
    assert await left(ledger) == (4 if first["MsgType"] != "event" else 2)
    assert await ledger.observe(push(**second)) is True  # another one, in the same second
    assert await left(ledger) == (5 if second["MsgType"] != "event" else 3)


async def test_pushes_that_open_no_window_record_nothing(ledger: WindowLedger) -> None:
    assert await ledger.observe(push(MsgType="event", Event="VIEW", EventKey="u")) is False
    assert await ledger.observe(push(MsgType="event", Event="unsubscribe")) is False
    assert not (await ledger.status(USER)).known


async def test_an_interaction_no_rule_covers_opens_nothing(clock: FrozenClock) -> None:
    messages_only = tuple(r for r in WINDOW_RULES if r.window == "message")
    ledger = WindowLedger(
        appid=APPID, store=MemoryWindowStore(), clock=clock.now, rules=messages_only
    )
    assert await ledger.opened(USER, kind=Interaction.FOLLOW) is False
    assert await ledger.observe(push(MsgType="event", Event="subscribe")) is False
    assert not (await ledger.status(USER)).known
    assert await ledger.opened(USER) is True


async def test_opened_by_hand_takes_a_ref(ledger: WindowLedger, clock: FrozenClock) -> None:
    assert await ledger.opened(USER, ref="a") is True
    await ledger.send(USER, accepted)
    assert await ledger.opened(USER, ref="a") is False
    assert await ledger.opened(USER, ref="b") is True
    assert await left(ledger) == 5
    # Without a time, the window opens now.
    clock.advance(HOUR)
    assert await ledger.opened(USER, ref="c") is True
    assert (await ledger.status(USER)).windows[0].opened_at == at(T0 + HOUR)


# ---------------------------------------------------------------------- refused input


async def test_a_naive_datetime_is_refused_with_its_value(ledger: WindowLedger) -> None:
    naive = datetime(2024, 1, 1)
    with pytest.raises(ValidationError) as caught:
        await ledger.opened(USER, at=naive)
    assert (caught.value.field, caught.value.value) == ("at", naive)
    assert str(caught.value) == "at: must be an aware datetime (or Unix seconds)"


@pytest.mark.parametrize("value", ["yesterday", True, [T0]])
async def test_a_time_that_is_no_time_is_refused_with_its_value(
    ledger: WindowLedger, value: object
) -> None:
    with pytest.raises(ValidationError) as caught:
        await ledger.opened(USER, at=value)  # type: ignore[arg-type]
    assert (caught.value.field, caught.value.value) == ("at", value)
    assert str(caught.value) == "at: must be an aware datetime or Unix seconds"


async def test_unix_seconds_are_accepted_as_int_or_float(ledger: WindowLedger) -> None:
    assert await ledger.opened(USER, at=T0 - 10, kind="follow") is True
    assert await ledger.opened("o_user2", at=float(T0 - 20), kind="follow") is True
    assert (await ledger.status(USER)).until == at(T0 + 50)
    assert (await ledger.status("o_user2")).until == at(T0 + 40)


async def test_an_unknown_kind_is_refused_naming_the_kinds(ledger: WindowLedger) -> None:
    with pytest.raises(ValidationError) as caught:
        await ledger.opened(USER, kind="payment")
    assert (caught.value.field, caught.value.value) == ("kind", "payment")
    assert str(caught.value) == (
        "kind: must be one of ['message', 'menu_click', 'follow', 'qr_scan']"
    )
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# ---------------------------------------------------------------------- answers


def test_the_ledger_shows_its_appid_and_store(ledger: WindowLedger) -> None:
    assert repr(ledger) == "WindowLedger(appid='wx_ledger', store=MemoryWindowStore(0 users))"


async def test_a_status_names_its_user(ledger: WindowLedger) -> None:
    assert (await ledger.status(USER)).openid == USER
    await ledger.opened(USER)
    status = await ledger.status(USER)
    assert (status.openid, status.known) == (USER, True)


async def test_reserve_names_the_unreachable_user_and_why(
    ledger: WindowLedger, clock: FrozenClock
) -> None:
    await ledger.opened(USER)
    for _ in range(5):
        await ledger.send(USER, accepted)
    with pytest.raises(UnreachableError) as caught:
        await ledger.reserve(USER)
    assert (caught.value.openid, caught.value.reason, caught.value.until) == (
        USER,
        "no_messages_left",
        at(T0 + 48 * HOUR),
    )
    clock.advance(48 * HOUR)
    with pytest.raises(UnreachableError) as caught:
        await ledger.reserve(USER)
    assert (caught.value.openid, caught.value.reason, caught.value.until) == (
        USER,
        "outside_window",
        at(T0 + 48 * HOUR),
    )


async def test_reserve_takes_a_message_from_the_window_ending_first(
    ledger: WindowLedger, clock: FrozenClock
) -> None:
    assert await ledger.reserve(USER) is None  # unknown: sent as usual
    await ledger.opened(USER, at=T0 - 100)
    await ledger.opened(USER, kind="follow", at=T0 - 10)
    clock.advance(5)
    reservation = await ledger.reserve(USER)
    assert reservation == Reservation(
        openid=USER, window="event", opened_at=T0 - 10, started=T0 + 5
    )
    assert [w.messages_left for w in (await ledger.status(USER)).windows] == [2, 5]
    await ledger.release(reservation)
    assert [w.messages_left for w in (await ledger.status(USER)).windows] == [3, 5]


async def test_ledgers_of_two_accounts_share_a_store_apart(clock: FrozenClock) -> None:
    store = MemoryWindowStore()
    ours = WindowLedger(appid=APPID, store=store, clock=clock.now)
    theirs = WindowLedger(appid="wx_other", store=store, clock=clock.now)
    await ours.opened(USER)
    assert not (await theirs.status(USER)).known
    assert [openid async for openid in theirs.reachable()] == []
    assert [openid async for openid in ours.reachable()] == [USER]


# ---------------------------------------------------------------------- sending


class RecordingStore(MemoryWindowStore):
    """A window store that notes how each spend was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.reserves: list[object] = []

    async def spend(self, appid: str, openid: str, *, now: float, reserve: bool) -> Spend:
        self.reserves.append(reserve)
        return await super().spend(appid, openid, now=now, reserve=reserve)


async def test_a_reservation_reserves_and_an_accepted_send_spends(clock: FrozenClock) -> None:
    store = RecordingStore()
    ledger = WindowLedger(appid=APPID, store=store, clock=clock.now)
    await ledger.opened(USER)
    await ledger.send(USER, accepted, await ledger.reserve(USER))
    await ledger.send(USER, accepted)
    assert [type(r) for r in store.reserves] == [bool, bool]
    assert store.reserves == [True, False]


async def test_a_reserved_send_is_not_spent_twice(ledger: WindowLedger) -> None:
    await ledger.opened(USER)
    reservation = await ledger.reserve(USER)
    assert await ledger.send(USER, accepted, reservation) == "ok"
    assert await left(ledger) == 4
    assert await ledger.send(USER, accepted) == "ok"
    assert await left(ledger) == 3


async def test_an_accepted_send_with_nothing_left_forgets_the_user(ledger: WindowLedger) -> None:
    """The spend after an accepted send never reserves: a record with nothing left is dropped
    (the ledger missed an interaction), not reported as exhausted."""
    await ledger.opened(USER)
    for _ in range(5):
        await ledger.send(USER, accepted)
    assert (await ledger.status(USER)).reachable is False
    await ledger.send(USER, accepted)
    assert not (await ledger.status(USER)).known


def rejected(
    exc: Exception, clock: FrozenClock, ledger: WindowLedger, *, meanwhile: float | None = None
) -> Callable[[], Awaitable[str]]:
    """A send that takes 10 s and fails with ``exc``; the user writes ``meanwhile`` s in."""

    async def call() -> str:
        if meanwhile is not None:
            clock.advance(meanwhile)
            await ledger.opened(USER, at=clock.now())
            clock.advance(-meanwhile)
        clock.advance(10)
        raise exc

    return call


@pytest.mark.parametrize("errcode", [45015, 45047])
@pytest.mark.parametrize("reserved", [True, False], ids=["reserved", "plain"])
async def test_a_correction_keeps_a_window_opened_while_the_send_was_in_flight(
    ledger: WindowLedger, clock: FrozenClock, errcode: int, reserved: bool
) -> None:
    """WeChat's 45015 / 45047 is about the windows opened before the send started (the
    reservation's time, when there is one): one opened during the send stays open."""
    await ledger.opened(USER, kind="follow", at=T0 - 10)
    reservation = await ledger.reserve(USER) if reserved else None
    clock.advance(20)  # the reservation waited (rate limit) before its request
    cls = ResponseWindowError if errcode == 45015 else ResponseQuotaError
    call = rejected(cls(errcode, "no"), clock, ledger, meanwhile=3)
    with pytest.raises(cls):
        await ledger.send(USER, call, reservation)
    status = await ledger.status(USER)
    kept = [("message", 5)] if errcode == 45015 else [("event", 0), ("message", 5)]
    assert [(w.window, w.messages_left) for w in status.windows] == kept
    assert (status.errcode, status.checked_at) == (errcode, at(T0 + 30))


async def test_a_reserved_send_starts_at_its_reservation_for_a_correction(
    ledger: WindowLedger, clock: FrozenClock
) -> None:
    """For the ledger a reserved send starts at its reservation: a window opened after it
    (while the send waited for the rate limiter) is kept by the 45015."""
    await ledger.opened(USER, at=T0 - 100)
    reservation = await ledger.reserve(USER)
    clock.advance(5)
    await ledger.opened(USER, kind="follow", at=T0 + 5)
    clock.advance(5)
    with pytest.raises(ResponseWindowError):
        await ledger.send(
            USER, rejected(ResponseWindowError(45015, "no"), clock, ledger), reservation
        )
    assert [w.window for w in (await ledger.status(USER)).windows] == ["event"]


async def test_a_failure_that_never_reached_wechat_gives_the_reservation_back(
    ledger: WindowLedger,
) -> None:
    await ledger.opened(USER)
    reservation = await ledger.reserve(USER)

    async def refused() -> str:
        raise ValidationError("content", "too long")

    with pytest.raises(ValidationError):
        await ledger.send(USER, refused, reservation)
    assert await left(ledger) == 5
    with pytest.raises(ValidationError):
        await ledger.send(USER, refused)  # nothing reserved: nothing given back or spent
    assert await left(ledger) == 5


async def test_a_failure_that_may_have_reached_wechat_keeps_it_spent(
    ledger: WindowLedger,
) -> None:
    await ledger.opened(USER)
    reservation = await ledger.reserve(USER)

    async def lost() -> str:
        raise ConnectionLostError("connection reset after the request was sent")

    with pytest.raises(ConnectionLostError):
        await ledger.send(USER, lost, reservation)
    assert await left(ledger) == 4


# ---------------------------------------------------------------------- a store that fails


class DownStore(MemoryWindowStore):
    """A window store whose backend is down for every step a send makes."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False

    def _fail(self, what: str) -> None:
        if self.failing:
            raise WindowStoreError(f"Redis window {what} for wx failed: ConnectionError: refused")

    async def spend(self, appid: str, openid: str, *, now: float, reserve: bool) -> Spend:
        self._fail("spend")
        return await super().spend(appid, openid, now=now, reserve=reserve)

    async def refund(self, appid: str, openid: str, *, window: str, opened_at: float) -> bool:
        self._fail("refund")
        return await super().refund(appid, openid, window=window, opened_at=opened_at)

    async def correct(self, appid: str, openid: str, **kwargs: Any) -> None:
        self._fail("correction")
        await super().correct(appid, openid, **kwargs)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "wechat_kf"]


def warning(what: str, step: str) -> str:
    return (
        f"window ledger: could not {what} (the send goes ahead as for an unknown user; this is "
        f"logged at most once a minute): WindowStoreError: Redis window {step} for wx failed: "
        "ConnectionError: refused"
    )


async def test_a_failing_store_never_fails_a_send_and_says_which_step_failed(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="wechat_kf")

    async def down() -> tuple[WindowLedger, DownStore]:
        store = DownStore()
        ledger = WindowLedger(appid=APPID, store=store, clock=clock.now)  # its own log interval
        await ledger.opened(USER)
        store.failing = True
        return ledger, store

    ledger, _ = await down()
    assert await ledger.reserve(USER) is None  # as for an unknown user
    assert await ledger.reserve(USER) is None
    assert warnings(caplog) == [warning("check a window", "spend")]  # once, not twice

    caplog.clear()
    ledger, store = await down()
    store.failing = False
    reservation = await ledger.reserve(USER)
    assert reservation is not None
    store.failing = True
    await ledger.release(reservation)
    assert warnings(caplog) == [warning("give back a reserved message", "refund")]

    caplog.clear()
    ledger, _ = await down()
    with pytest.raises(ResponseWindowError):  # WeChat's answer passes through
        await ledger.send(USER, rejected(ResponseWindowError(45015, "no"), clock, ledger))
    assert warnings(caplog) == [warning("correct a window", "correction")]

    caplog.clear()
    ledger, _ = await down()
    assert await ledger.send(USER, accepted) == "ok"
    assert await ledger.send(USER, accepted) == "ok"
    assert warnings(caplog) == [warning("record a send", "spend")]


class CountingStore(MemoryWindowStore):
    """A window store answering a spend the contract does not allow: charged, but no window."""

    async def spend(self, appid: str, openid: str, *, now: float, reserve: bool) -> Spend:
        return Spend(outcome=SpendOutcome.CHARGED)


async def test_a_charge_without_a_window_is_no_reservation(clock: FrozenClock) -> None:
    ledger = WindowLedger(appid=APPID, store=CountingStore(), clock=clock.now)
    await ledger.opened(USER)
    assert await ledger.reserve(USER) is None


# ---------------------------------------------------------------------- a store that waits


class SlowStore(MemoryWindowStore):
    """A window store whose every send step waits for ``go`` (a slow backend)."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = anyio.Event()
        self.go = anyio.Event()
        self.done: list[str] = []

    async def _slow(self, step: Awaitable[Any], name: str) -> Any:
        self.waiting.set()
        await self.go.wait()
        result = await step
        self.done.append(name)
        return result

    async def spend(self, appid: str, openid: str, *, now: float, reserve: bool) -> Spend:
        spend = super().spend(appid, openid, now=now, reserve=reserve)
        return await self._slow(spend, "reserve" if reserve else "spend")  # type: ignore[no-any-return]

    async def refund(self, appid: str, openid: str, *, window: str, opened_at: float) -> bool:
        refund = super().refund(appid, openid, window=window, opened_at=opened_at)
        return await self._slow(refund, "refund")  # type: ignore[no-any-return]

    async def correct(self, appid: str, openid: str, **kwargs: Any) -> None:
        await self._slow(super().correct(appid, openid, **kwargs), "correct")


async def cancelled_during_the_store_step(
    store: SlowStore, step: Callable[[], Awaitable[object]]
) -> None:
    """Run ``step``, cancel it while the store waits, then let the store go on."""
    finished: list[bool] = []

    async def run(scope: anyio.CancelScope) -> None:
        with scope:
            await step()
            finished.append(True)

    scope = anyio.CancelScope()
    async with anyio.create_task_group() as group:
        group.start_soon(run, scope)
        await store.waiting.wait()
        scope.cancel()
        await anyio.wait_all_tasks_blocked()
        store.go.set()
    assert finished in ([], [True])


@pytest.mark.parametrize("step", ["spend", "reserve", "refund", "correct"])
async def test_a_send_cancelled_during_a_store_step_still_completes_it(
    clock: FrozenClock, step: str
) -> None:
    store = SlowStore()
    ledger = WindowLedger(appid=APPID, store=store, clock=clock.now)
    await ledger.opened(USER)
    if step == "refund":
        store.go.set()
        reservation = await ledger.reserve(USER)
        assert reservation is not None
        store.go, store.waiting, store.done = anyio.Event(), anyio.Event(), []
        await cancelled_during_the_store_step(store, lambda: ledger.release(reservation))
        assert (store.done, await left(ledger)) == (["refund"], 5)
    elif step == "reserve":
        await cancelled_during_the_store_step(store, lambda: ledger.reserve(USER))
        assert (store.done, await left(ledger)) == (["reserve"], 4)
    elif step == "spend":
        await cancelled_during_the_store_step(store, lambda: ledger.send(USER, accepted))
        assert (store.done, await left(ledger)) == (["spend"], 4)
    else:
        call = rejected(ResponseQuotaError(45047, "used up"), clock, ledger)

        async def refused() -> None:
            with pytest.raises(ResponseQuotaError):
                await ledger.send(USER, call)

        await cancelled_during_the_store_step(store, refused)
        assert store.done == ["correct"]
        assert (await ledger.status(USER)).errcode == 45047
