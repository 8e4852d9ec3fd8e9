"""Bulk sends: send_many, stream_many, the rate limiter, pool sizing and the fast transport.

Behaviour only, never timing: the fake answers, a gate transport counts and holds requests,
and the rate limiter runs on a fake clock.
"""

from __future__ import annotations

import contextlib
import math
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Final

import anyio
import httpx
import pytest

from wechat_kf import (
    AsyncWeChat,
    ConfigurationError,
    ConnectFailedError,
    ConnectionLostError,
    DailyQuotaError,
    HTTPStatusError,
    ResponseTimeoutError,
    ResponseWindowError,
    ServerBusyError,
    Text,
    TokenFetchError,
    ValidationError,
    _defaults,
)
from wechat_kf._pipeline import encode_json
from wechat_kf._pool import AnyioTransport
from wechat_kf._transport import SDKHTTPClient
from wechat_kf.bulk import (
    MessageBuildError,
    RateLimiter,
    SendCancelledError,
    SendControl,
    SendInterruptedError,
    SendReport,
    SendResult,
    SendStatus,
    SendSummary,
)
from wechat_kf.messages import Message, envelope
from wechat_kf.testing import FakeWeChat

from .conftest import SleepRecorder, loopback_client, sdk_client

pytestmark = pytest.mark.anyio

SEND = "/cgi-bin/message/custom/send"
NOTICE = Text(content="Your order shipped 已发货 <a href='x'>track</a>")


def users(n: int, prefix: str = "u") -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(n)]


def open_windows(fake: FakeWeChat, openids: list[str]) -> None:
    for openid in openids:
        fake.user_says(openid)


def assert_each_once(report: SendReport, recipients: list[str]) -> None:
    assert [r.index for r in report.results] == list(range(len(recipients)))
    assert [r.openid for r in report.results] == recipients
    assert report.total == len(recipients)
    assert sum(report.counts.values()) == len(recipients)


class Gate(httpx.AsyncBaseTransport):
    """The fake's in-process transport, counting sends in flight; it can hold their answers."""

    def __init__(self, fake: FakeWeChat, *, pause: float = 0.0) -> None:
        self.inner = fake.transport()
        self.pause = pause
        self.in_flight = 0
        self.peak = 0
        self.started = 0
        self.hold: anyio.Event | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != SEND:
            return await self.inner.handle_async_request(request)
        self.started += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            response = await self.inner.handle_async_request(request)  # WeChat acts on it...
            if self.pause:
                await anyio.sleep(self.pause)  # ... and the answer takes a while
            if self.hold is not None:
                await self.hold.wait()
            return response
        finally:
            self.in_flight -= 1


def gated_client(fake: FakeWeChat, gate: Gate, sleeps: SleepRecorder) -> AsyncWeChat:
    return AsyncWeChat(
        fake.appid,
        fake.secret,
        http_client=httpx.AsyncClient(transport=gate),
        base_url="https://api.weixin.qq.com",
        sleep=sleeps,
    )


# ---------------------------------------------------------------- every recipient, once


async def test_every_recipient_reported_once_in_input_order(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    good = users(12)
    open_windows(fake, good)
    recipients = [*good[:6], "no window", "o_closed", *good[6:], ""]
    report = await wx.message.send_many(recipients, NOTICE, max_concurrency=4)
    assert_each_once(report, recipients)
    assert report.sent == 12
    assert report.failed == 3
    assert report.complete
    assert report.stopped_by is None
    by_openid = {r.openid: r for r in report.results}
    assert isinstance(by_openid["no window"].error, ValidationError)  # bad openid, no request
    assert isinstance(by_openid["o_closed"].error, ResponseWindowError)
    assert by_openid["o_closed"].errcode == 45015
    assert dict(report.errcodes) == {45015: 1}
    for openid in good:
        assert len(fake.sent_to(openid)) == 1
    assert len(fake.requests_to(SEND)) == 13
    assert [r.openid for r in report.with_status("sent")] == good


async def test_bodies_are_byte_identical_to_send(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    fake.add_agent("kf_1@service", "Ann")
    open_windows(fake, ["a"])  # 'b"quote' is refused by WeChat (40003), after its body is seen
    await wx.message.send_many(
        ["a", 'b"quote'], NOTICE, kf_account="kf_1@service", ai_generated=True
    )
    await wx.message.send("a", NOTICE, kf_account="kf_1@service", ai_generated=True)
    first, second, single = fake.requests_to(SEND)
    expected = encode_json(envelope("a", NOTICE, kf_account="kf_1@service", ai_generated=True))
    assert single.body == expected
    assert {first.body, second.body} == {
        expected,
        encode_json(envelope('b"quote', NOTICE, kf_account="kf_1@service", ai_generated=True)),
    }
    assert b"\\u" not in first.body


async def test_generator_and_async_iterable_are_read_lazily(fake: FakeWeChat) -> None:
    recipients = users(40)
    open_windows(fake, recipients)
    gate = Gate(fake)
    pulled = 0
    worst_lead = 0

    def track() -> None:
        nonlocal pulled, worst_lead
        pulled += 1
        worst_lead = max(worst_lead, pulled - gate.started)

    def generate() -> Iterator[str]:
        for openid in recipients[:20]:
            track()
            yield openid

    async def agenerate() -> AsyncIterator[str]:
        for openid in recipients[20:]:
            await anyio.lowlevel.checkpoint()
            track()
            yield openid

    async with gated_client(fake, gate, SleepRecorder()) as wx:
        first = await wx.message.send_many(generate(), NOTICE, max_concurrency=4)
        second = await wx.message.send_many(agenerate(), NOTICE, max_concurrency=4)
    assert_each_once(first, recipients[:20])
    assert_each_once(second, recipients[20:])
    assert first.sent == second.sent == 20
    assert worst_lead <= 4  # never read further ahead than there are workers


async def test_concurrency_bound_is_never_exceeded(fake: FakeWeChat) -> None:
    recipients = users(60)
    open_windows(fake, recipients)
    gate = Gate(fake, pause=0.002)
    async with gated_client(fake, gate, SleepRecorder()) as wx:
        report = await wx.message.send_many(recipients, NOTICE, max_concurrency=7)
    assert report.sent == 60
    assert gate.peak == 7
    assert len(fake.token_requests) == 1  # 7 cold workers, one token fetch


# ---------------------------------------------------------------- ambiguous failures


async def test_ambiguous_failures_are_unknown_and_never_retried(fake: FakeWeChat) -> None:
    recipients = users(6)
    open_windows(fake, recipients)
    sleeps = SleepRecorder()
    async with fake.client(sleep=sleeps, timeout=0.05) as wx:
        await wx.access_token()
        fake.inject(SEND, delay=0.5)  # processed; the answer comes too late
        fake.inject(SEND, status=502)
        fake.inject(SEND, malformed=b"<html>gateway</html>")
        report = await wx.message.send_many(recipients, NOTICE, max_concurrency=1)
    assert_each_once(report, recipients)
    statuses = [r.status for r in report.results]
    assert statuses == [SendStatus.UNKNOWN] * 3 + [SendStatus.SENT] * 3
    assert isinstance(report.results[0].error, ResponseTimeoutError)
    assert isinstance(report.results[1].error, HTTPStatusError)
    assert report.results[0].error.may_have_reached_wechat
    assert len(fake.requests_to(SEND)) == 6  # one request each: nothing retried
    assert sleeps.delays == []
    assert len(fake.sent_to(recipients[0])) == 1  # the timed-out one did reach the user


async def test_connection_failures_retry_and_deliver_exactly_once(fake: FakeWeChat) -> None:
    recipients = users(5)
    open_windows(fake, recipients)
    sleeps = SleepRecorder()
    async with fake.client(sleep=sleeps) as wx:
        await wx.access_token()
        fake.inject(SEND, connect_error=True)  # never left: safe to retry
        fake.inject(SEND, errcode=-1)  # busy: nothing done, safe to retry
        report = await wx.message.send_many(recipients, NOTICE, max_concurrency=1)
    assert report.sent == 5
    assert all(len(fake.sent_to(openid)) == 1 for openid in recipients)
    assert len(fake.requests_to(SEND)) == 7
    assert len(sleeps.delays) == 2


@pytest.mark.parametrize("streaming", [False, True], ids=["send_many", "stream_many"])
async def test_busy_is_unknown_reports_busy_recipients_unknown_and_never_resends(
    fake: FakeWeChat, streaming: bool
) -> None:
    recipients = users(4)
    open_windows(fake, recipients)
    sleeps = SleepRecorder()
    async with fake.client(sleep=sleeps) as wx:
        await wx.access_token()
        fake.inject(SEND, errcode=-1, processed=True, times=2)  # delivered, answered busy
        if streaming:
            async with wx.message.stream_many(
                recipients, NOTICE, max_concurrency=1, busy_is_unknown=True
            ) as stream:
                results = sorted([r async for r in stream], key=lambda r: r.index)
        else:
            report = await wx.message.send_many(
                recipients, NOTICE, max_concurrency=1, busy_is_unknown=True
            )
            results = list(report.results)
            assert report.unknown == 2
            assert report.errcodes == {}  # unknown results are not counted as refusals
    assert [r.status for r in results] == [SendStatus.UNKNOWN] * 2 + [SendStatus.SENT] * 2
    assert all(isinstance(r.error, ServerBusyError) for r in results[:2])
    assert len(fake.requests_to(SEND)) == 4  # one request each: nothing re-sent
    assert all(len(fake.sent_to(openid)) == 1 for openid in recipients)
    assert sleeps.delays == []


async def test_connection_failures_past_the_retries_are_failed(fake: FakeWeChat) -> None:
    open_windows(fake, ["a", "b"])
    async with fake.client(sleep=SleepRecorder()) as wx:
        await wx.access_token()
        fake.inject(SEND, connect_error=True, times=3)  # 1 + max_retries attempts
        report = await wx.message.send_many(["a", "b"], NOTICE, max_concurrency=1)
    assert [r.status for r in report.results] == [SendStatus.FAILED, SendStatus.SENT]
    error = report.results[0].error
    assert isinstance(error, ConnectFailedError)
    assert not error.may_have_reached_wechat


# ---------------------------------------------------------------- stopping


@pytest.mark.parametrize("source", ["list", "async"])
async def test_daily_quota_stops_the_run_and_skips_the_rest(
    fake: FakeWeChat, wx: AsyncWeChat, source: str
) -> None:
    recipients = users(10)
    open_windows(fake, recipients)
    await wx.access_token()
    fake.inject(SEND, errcode=45009, times=10)

    async def agen() -> AsyncIterator[str]:
        for openid in recipients:
            yield openid

    report = await wx.message.send_many(
        recipients if source == "list" else agen(), NOTICE, max_concurrency=1
    )
    assert_each_once(report, recipients)
    assert isinstance(report.stopped_by, DailyQuotaError)
    assert report.results[0].status is SendStatus.FAILED
    assert report.results[0].error is report.stopped_by
    assert all(r.status is SendStatus.SKIPPED for r in report.results[1:])
    assert all(r.error is report.stopped_by for r in report.results[1:])
    assert report.counts[SendStatus.SKIPPED] == 9
    assert dict(report.errcodes) == {45009: 1}
    assert report.complete
    assert len(fake.requests_to(SEND)) == 1


async def test_daily_quota_lets_requests_in_flight_finish(fake: FakeWeChat) -> None:
    recipients = users(30)
    open_windows(fake, recipients)
    gate = Gate(fake, pause=0.002)
    async with gated_client(fake, gate, SleepRecorder()) as wx:
        await wx.access_token()
        for _ in range(3):
            fake.inject(SEND, errcode=0)  # three plain answers, then the quota is gone
        fake.inject(SEND, errcode=45009, times=100)
        report = await wx.message.send_many(recipients, NOTICE, max_concurrency=4)
    assert_each_once(report, recipients)
    attempted = len(fake.requests_to(SEND))
    assert attempted <= 3 + 4  # at most one round of in-flight requests after the quota error
    assert report.skipped == 30 - attempted
    assert report.failed + report.sent == attempted


async def test_configuration_errors_stop_the_run(fake: FakeWeChat) -> None:
    async with AsyncWeChat(
        fake.appid, "wrong-secret", http_client=fake.http_client(), sleep=SleepRecorder()
    ) as wx:
        report = await wx.message.send_many(users(8), NOTICE, max_concurrency=2)
    assert isinstance(report.stopped_by, ConfigurationError)
    assert report.sent == 0
    assert report.failed <= 2
    assert report.skipped == 8 - report.failed
    assert len(fake.token_requests) <= 2


async def test_stop_skips_the_rest_and_returns_the_report(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    recipients = users(20)
    open_windows(fake, recipients)
    control = SendControl()

    def personal(openid: str) -> Message:
        if openid == recipients[5]:
            control.stop()
        return Text(content=f"hi {openid}")

    report = await wx.message.send_many(recipients, personal, max_concurrency=1, control=control)
    assert control.report is report
    assert_each_once(report, recipients)
    assert str(report.stopped_by) == "the bulk send was stopped"
    # The recipient whose message was being built when stop() came is not sent either.
    assert [r.status for r in report.results[:5]] == [SendStatus.SENT] * 5
    assert all(r.status is SendStatus.SKIPPED for r in report.results[5:])
    assert isinstance(report.stopped_by, SendCancelledError)
    assert report.complete
    assert sum(len(fake.sent_to(openid)) for openid in recipients) == 5


async def test_a_stop_while_reading_an_async_source_builds_no_further_message(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    recipients = users(6)
    open_windows(fake, recipients)
    control = SendControl()
    reached, slow = anyio.Event(), anyio.Event()
    built: list[str] = []

    async def source() -> AsyncIterator[str]:
        for openid in recipients:
            if openid == "u002":
                reached.set()
                await slow.wait()  # one worker waits here, holding the source...
            yield openid

    def personal(openid: str) -> Message:
        built.append(openid)
        return Text(content="hi")

    async def stop_while_the_other_worker_waits() -> None:
        await reached.wait()
        while control.summary().total < 2:  # ... the other, its send done, waits for it
            await anyio.lowlevel.checkpoint()
        control.stop()
        slow.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_while_the_other_worker_waits)
        report = await wx.message.send_many(source(), personal, max_concurrency=2, control=control)
    assert_each_once(report, recipients)
    assert [r.status for r in report.results] == [SendStatus.SENT] * 2 + [SendStatus.SKIPPED] * 4
    assert built == recipients[:3]  # u002 was already read; nothing after it is built
    assert len(fake.requests_to(SEND)) == 2


async def test_stop_before_the_run_sends_nothing(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    control = SendControl()
    assert control.stopping is False
    assert control.report is None
    control.stop()
    assert control.stopping is True
    report = await wx.message.send_many(users(5), NOTICE, control=control)
    assert report.skipped == 5
    assert report.complete
    assert str(report.stopped_by) == "the bulk send was stopped"
    assert all(r.error is report.stopped_by for r in report.results)
    assert fake.requests_to(SEND) == []
    with pytest.raises(RuntimeError) as reused:
        await wx.message.send_many(users(1), NOTICE, control=control)
    assert str(reused.value) == "a SendControl drives one bulk send; create one per call"


# ---------------------------------------------------------------- cancellation


async def test_cancelling_the_caller_accounts_for_every_attempt(fake: FakeWeChat) -> None:
    recipients = users(50)
    open_windows(fake, recipients)
    gate = Gate(fake, pause=0.005)
    control = SendControl()
    async with gated_client(fake, gate, SleepRecorder()) as wx:
        await wx.access_token()
        with anyio.CancelScope() as scope:

            def personal(openid: str) -> Message:
                if openid == recipients[20]:
                    scope.cancel()
                return Text(content="hi")

            await wx.message.send_many(recipients, personal, max_concurrency=4, control=control)
        assert scope.cancelled_caught
        report = control.report
        assert report is not None
        assert not report.complete
        assert isinstance(report.stopped_by, SendCancelledError)
        assert gate.in_flight == 0  # nothing left running behind our back
        sent = {r.openid for r in report.results if r.status is SendStatus.SENT}
        delivered = {openid for openid in recipients if fake.sent_to(openid)}
        assert sent == delivered  # in-flight requests finished within the grace period
        assert len(fake.requests_to(SEND)) == len(sent)
        assert report.unknown == 0
        reported = [r.openid for r in report.results]
        assert len(reported) == len(set(reported))
        assert reported == recipients[: len(reported)]  # a prefix: the rest was never read
        assert len(reported) <= 21 + 4


async def test_in_flight_requests_past_the_grace_are_unknown(
    fake: FakeWeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_defaults, "BULK_CANCEL_GRACE", 0.02)
    recipients = users(3)
    open_windows(fake, recipients)
    gate = Gate(fake)
    gate.hold = anyio.Event()  # WeChat acts, but no answer ever comes
    control = SendControl()
    async with gated_client(fake, gate, SleepRecorder()) as wx:
        await wx.access_token()
        with anyio.move_on_after(0.05):
            await wx.message.send_many(recipients, NOTICE, max_concurrency=3, control=control)
    report = control.report
    assert report is not None
    assert report.unknown == 3
    assert all(isinstance(r.error, SendInterruptedError) for r in report.results)
    assert all(r.error.may_have_reached_wechat for r in report.results)  # type: ignore[union-attr]
    error = report.results[0].error
    assert isinstance(error, SendInterruptedError)
    assert (error.method, error.path) == ("POST", SEND)
    assert str(error) == f"POST {SEND}: cancelled with the request in flight for more than 0.02 s"
    assert error.__traceback__ is None
    assert isinstance(report.stopped_by, SendCancelledError)
    assert str(report.stopped_by) == "the bulk send was cancelled"
    assert gate.in_flight == 0


async def test_a_run_is_complete_only_once_its_last_request_answered(fake: FakeWeChat) -> None:
    recipients = users(2)
    open_windows(fake, recipients)
    gate = Gate(fake)
    gate.hold = anyio.Event()
    ended = anyio.Event()
    control = SendControl()

    def source() -> Iterator[str]:
        yield from recipients
        ended.set()  # a third worker asked for more: every recipient has been read

    async def release_when_both_in_flight() -> None:
        await ended.wait()
        while gate.in_flight < 2:
            await anyio.lowlevel.checkpoint()
        midway = control.summary()
        assert (midway.total, midway.complete) == (0, False)  # read, but no answer yet
        assert gate.hold is not None
        gate.hold.set()

    async with gated_client(fake, gate, SleepRecorder()) as wx:
        await wx.access_token()
        async with anyio.create_task_group() as tg:
            tg.start_soon(release_when_both_in_flight)
            report = await wx.message.send_many(
                source(), NOTICE, max_concurrency=3, control=control
            )
    assert report.sent == 2
    assert report.complete is True
    assert control.summary().complete is True


async def test_leaving_a_stream_after_the_last_recipient_was_read_is_incomplete(
    fake: FakeWeChat,
) -> None:
    recipients = users(2)
    open_windows(fake, recipients)
    gate = Gate(fake)
    gate.hold = anyio.Event()
    ended = anyio.Event()

    def source() -> Iterator[str]:
        yield from recipients
        ended.set()

    async with gated_client(fake, gate, SleepRecorder()) as wx:
        await wx.access_token()
        stream = wx.message.stream_many(source(), NOTICE, max_concurrency=3)

        async def answer_once_the_reader_left() -> None:
            while stream.summary.stopped_by is None:
                await anyio.lowlevel.checkpoint()
            assert gate.hold is not None
            gate.hold.set()

        async with anyio.create_task_group() as tg, stream:
            await ended.wait()
            while gate.in_flight < 2:
                await anyio.lowlevel.checkpoint()
            tg.start_soon(answer_once_the_reader_left)
            # left without reading: the two sends finished after, unread
    assert str(stream.summary.stopped_by) == "the reader left the stream"
    assert [r.status for r in stream.unread] == [SendStatus.SENT] * 2
    assert stream.summary.complete is False  # the reader left early: never complete


async def test_cancelled_after_every_recipient_was_read_is_still_incomplete(
    fake: FakeWeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One worker more than recipients: it finds the end at once while the others are in flight.
    monkeypatch.setattr(_defaults, "BULK_CANCEL_GRACE", 0.02)
    recipients = users(3)
    open_windows(fake, recipients)
    gate = Gate(fake)
    gate.hold = anyio.Event()
    control = SendControl()
    async with gated_client(fake, gate, SleepRecorder()) as wx:
        await wx.access_token()
        with anyio.fail_after(5):  # the grace bounds the requests in flight: no hang
            with anyio.CancelScope() as scope:

                async def cancel_when_all_in_flight() -> None:
                    while gate.in_flight < 3:
                        await anyio.lowlevel.checkpoint()
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_when_all_in_flight)
                    await wx.message.send_many(
                        recipients, NOTICE, max_concurrency=4, control=control
                    )
    report = control.report
    assert report is not None
    assert report.unknown == 3
    assert report.complete is False  # cancelled: the docs promise False, whatever was read
    assert isinstance(report.stopped_by, SendCancelledError)
    assert gate.in_flight == 0


async def test_cancelled_while_waiting_for_the_rate_is_skipped(fake: FakeWeChat) -> None:
    recipients = users(4)
    open_windows(fake, recipients)
    control = SendControl()
    async with fake.client() as wx:
        await wx.access_token()
        with anyio.move_on_after(0.05):
            await wx.message.send_many(
                recipients, NOTICE, max_concurrency=2, rate=RateLimiter(1), control=control
            )
    report = control.report
    assert report is not None
    # The first slot is free, the next a second away: each worker holds one recipient then.
    assert [r.status for r in report.results] == [SendStatus.SENT] + [SendStatus.SKIPPED] * 2
    assert [r.openid for r in report.results] == recipients[:3]
    assert all(isinstance(r.error, SendCancelledError) for r in report.results[1:])
    assert all(str(r.error) == "the bulk send was cancelled" for r in report.results[1:])
    assert not report.complete
    assert len(fake.requests_to(SEND)) == 1


# ---------------------------------------------------------------- personalised messages


async def test_an_error_chain_that_loops_loses_its_frames_and_ends(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    def looping(openid: str) -> Message:
        first, second = LookupError("first"), LookupError("second")
        first.__cause__, second.__cause__ = second, first
        try:
            raise second
        except LookupError:
            pass
        raise first

    report = await wx.message.send_many(["o_a"], looping)
    (result,) = report.results
    assert isinstance(result.error, MessageBuildError)
    chain = error_chain(result.error)
    assert [str(e) for e in chain[1:]] == ["first", "second"]
    assert all(e.__traceback__ is None for e in chain)


async def test_personalised_messages_sync_and_async(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    recipients = users(6)
    open_windows(fake, recipients)

    def sync(openid: str) -> Message:
        return Text(content=f"hello {openid}")

    async def asynchronous(openid: str) -> Message:
        await anyio.lowlevel.checkpoint()
        return Text(content=f"bonjour {openid}")

    first = await wx.message.send_many(recipients[:3], sync)
    second = await wx.message.send_many(recipients[3:], asynchronous)
    assert first.sent == second.sent == 3
    assert fake.sent_to("u001")[0]["text"]["content"] == "hello u001"
    assert fake.sent_to("u004")[0]["text"]["content"] == "bonjour u004"


async def test_a_failing_message_callable_fails_only_its_recipient(
    fake: FakeWeChat, wx: AsyncWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    recipients = users(4)
    open_windows(fake, recipients)
    names = {"u000": "Ann", "u002": ""}

    def personal(openid: str) -> object:
        if openid == "u003":
            return "not a message"
        return Text(content=f"hi {names[openid]}" if names[openid] else "")

    report = await wx.message.send_many(recipients, personal, max_concurrency=2)  # type: ignore[arg-type]
    assert_each_once(report, recipients)
    assert report.failed == 3
    assert dict(report.errcodes) == {}  # nothing WeChat refused
    ok, missing, empty, wrong = report.results
    assert ok.status is SendStatus.SENT
    assert missing.status is SendStatus.FAILED
    assert isinstance(missing.error, MessageBuildError)
    assert isinstance(missing.error.__cause__, KeyError)
    assert missing.error.__traceback__ is None  # results keep no stack frames alive
    assert isinstance(empty.error, ValidationError)  # a WeChatError is kept as is
    assert isinstance(wrong.error, MessageBuildError)
    assert isinstance(wrong.error.__cause__, TypeError)
    assert str(wrong.error) == (
        "the message callable failed for this recipient: "
        "TypeError: message must be a wechat_kf message, got str"
    )
    assert str(missing.error) == "the message callable failed for this recipient: KeyError: 'u001'"
    assert len(fake.requests_to(SEND)) == 1
    # The first failure is logged with its traceback; the second is only on its result.
    (logged,) = [r for r in caplog.records if r.name == "wechat_kf"]
    assert logged.levelname == "WARNING"
    assert logged.getMessage() == (
        "bulk send: the message callable failed (first failure shown; each such recipient "
        "is reported failed)"
    )
    assert logged.exc_info is not None
    assert logged.exc_info[1] in (missing.error, wrong.error)


# ---------------------------------------------------------------- accounting: several of each


def error_chain(error: BaseException | None) -> list[BaseException]:
    """``error`` and every cause or context behind it."""
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


class Accounting:
    """A personalised run over every kind of result, several of each, on one worker.

    In order: two ``unknown`` (a connection reset after sending, an HTTP 502), three ``sent``,
    three refused with 45015 (no window) and two with 40003 (an openid WeChat refuses), two bad
    openids and one failing callable (``failed`` without an errcode), one refused with 45009
    (the daily quota: the run stops) and three ``skipped``.
    """

    recipients: Final = [
        *users(5),
        *users(3, "o_gone"),
        'b"q1',
        'b"q2',
        "",
        "has space",
        "u_broken",
        "u_quota",
        *users(3, "o_later"),
    ]
    errcodes: Final = {45015: 3, 40003: 2, 45009: 1}

    def __init__(self, fake: FakeWeChat) -> None:
        self.fake = fake
        open_windows(fake, [*users(5), "u_quota", *users(3, "o_later")])
        fake.inject(SEND, reset=True)
        fake.inject(SEND, status=502)
        self.midway: SendSummary | None = None
        self.summary: Callable[[], SendSummary] | None = None

    def message(self, openid: str) -> Message:
        if openid == "u_broken":
            try:
                {}[openid]
            except KeyError:  # a context, not a cause: the chain goes on through it
                raise LookupError("no template for u_broken")  # noqa: B904
        if openid == "u_quota":
            assert self.summary is not None
            self.midway = self.summary()
            self.fake.inject(SEND, errcode=45009)
        return Text(content=f"hi {openid}")

    def check_counts(self, summary: SendSummary) -> None:
        assert dict(summary.counts) == {
            SendStatus.SENT: 3,
            SendStatus.FAILED: 9,
            SendStatus.UNKNOWN: 2,
            SendStatus.SKIPPED: 3,
        }
        assert (summary.sent, summary.failed, summary.unknown, summary.skipped) == (3, 9, 2, 3)
        assert summary.total == len(self.recipients) == 17
        assert dict(summary.errcodes) == self.errcodes
        assert isinstance(summary.stopped_by, DailyQuotaError)
        assert summary.complete
        # Counted so far when the quota's recipient was built: the run was not complete yet.
        midway = self.midway
        assert midway is not None
        assert (midway.sent, midway.failed, midway.unknown, midway.skipped) == (3, 8, 2, 0)
        assert midway.total == 13
        assert dict(midway.errcodes) == {45015: 3, 40003: 2}
        assert midway.stopped_by is None
        assert not midway.complete

    def check_results(self, results: list[SendResult]) -> None:
        assert [r.index for r in results] == list(range(17))
        assert [r.openid for r in results] == self.recipients
        assert [r.status for r in results] == [
            *[SendStatus.UNKNOWN] * 2,
            *[SendStatus.SENT] * 3,
            *[SendStatus.FAILED] * 9,
            *[SendStatus.SKIPPED] * 3,
        ]
        assert [r.errcode for r in results] == [
            None,
            None,
            None,
            None,
            None,
            45015,
            45015,
            45015,
            40003,
            40003,
            None,
            None,
            None,
            45009,
            *[45009] * 3,  # skipped: the quota error is their reason
        ]
        assert [r.ok for r in results] == [False] * 2 + [True] * 3 + [False] * 12
        assert isinstance(results[0].error, ConnectionLostError)
        assert isinstance(results[1].error, HTTPStatusError)
        assert all(r.error is None for r in results[2:5])
        assert all(isinstance(r.error, ValidationError) for r in results[10:12])
        assert isinstance(results[12].error, MessageBuildError)
        assert "LookupError: no template for u_broken" in str(results[12].error)
        stop = results[13].error
        assert isinstance(stop, DailyQuotaError)
        assert all(r.error is stop for r in results[14:])
        # No result keeps stack frames alive: neither its error nor what caused it.
        for result in results:
            for error in error_chain(result.error):
                assert error.__traceback__ is None, (result.openid, error)
        assert error_chain(results[0].error)[1:]  # the transport's error behind the reset
        built = error_chain(results[12].error)
        assert [type(e) for e in built] == [MessageBuildError, LookupError, KeyError]
        sent = [r.openid for r in results if r.status is SendStatus.SENT]
        assert sent == users(5)[2:]
        # The reset and the 502 came after WeChat acted: the unknown ones did reach their users.
        assert [len(self.fake.sent_to(openid)) for openid in users(5)] == [1] * 5
        assert len(self.fake.requests_to(SEND)) == 2 + 3 + 3 + 2 + 1


async def test_send_many_counts_every_field_with_several_results_each(
    fake: FakeWeChat, wx: AsyncWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    await wx.access_token()
    run = Accounting(fake)
    control = SendControl()
    assert control.summary().total == 0
    assert dict(control.summary().errcodes) == {}
    run.summary = control.summary
    report = await wx.message.send_many(
        run.recipients, run.message, max_concurrency=1, control=control
    )
    assert control.report is report
    run.check_counts(report)
    run.check_results(list(report.results))
    assert [r.openid for r in report.with_status("failed")] == run.recipients[5:14]
    assert report.with_status(SendStatus.SKIPPED) == list(report.results[14:])
    assert report.with_status("unknown") == list(report.results[:2])
    run.check_counts(control.summary())
    # The bad openids before it failed too, but only the callable's failure is logged.
    (logged,) = [r for r in caplog.records if r.name == "wechat_kf"]
    assert logged.exc_info is not None
    assert logged.exc_info[1] is report.results[12].error


async def test_stream_many_counts_every_field_with_several_results_each(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    await wx.access_token()
    run = Accounting(fake)
    seen: list[SendResult] = []
    async with wx.message.stream_many(run.recipients, run.message, max_concurrency=1) as stream:
        run.summary = lambda: stream.summary
        async for result in stream:
            seen.append(result)
    run.check_counts(stream.summary)
    run.check_results(seen)
    assert stream.unread == ()


@pytest.mark.parametrize("streaming", [False, True], ids=["send_many", "stream_many"])
@pytest.mark.parametrize("kind", ["fixed", "sync", "async"])
async def test_every_kind_of_bulk_body_is_byte_identical_to_send(
    fake: FakeWeChat, wx: AsyncWeChat, streaming: bool, kind: str
) -> None:
    fake.add_agent("kf_1@service", "Ann")
    recipients = users(3)
    open_windows(fake, recipients)

    def personal(openid: str) -> Message:
        return Text(content=f"hi {openid} 你好 @home")

    async def apersonal(openid: str) -> Message:
        await anyio.lowlevel.checkpoint()
        return personal(openid)

    messages: dict[str, object] = {"fixed": NOTICE, "sync": personal, "async": apersonal}
    message = messages[kind]
    options = {"kf_account": "kf_1@service", "ai_generated": True, "max_concurrency": 1}
    if streaming:
        async with wx.message.stream_many(recipients, message, **options) as stream:  # type: ignore[arg-type]
            assert [r.status async for r in stream] == [SendStatus.SENT] * 3
    else:
        report = await wx.message.send_many(recipients, message, **options)  # type: ignore[arg-type]
        assert report.sent == 3
    for openid, request in zip(recipients, fake.requests_to(SEND), strict=True):
        text = NOTICE if kind == "fixed" else personal(openid)
        one = envelope(openid, text, kf_account="kf_1@service", ai_generated=True)
        assert request.body == encode_json(one)
        assert request.json()["customservice"] == {"kf_account": "kf_1@service"}
        assert request.json()["aimsgcontext"] == {"is_ai_msg": 1}


# ---------------------------------------------------------------- streaming


async def test_stream_yields_every_result_with_flat_lookahead(fake: FakeWeChat) -> None:
    recipients = users(80)
    open_windows(fake, recipients)
    pulled = 0

    def generate() -> Iterator[str]:
        nonlocal pulled
        for openid in recipients:
            pulled += 1
            yield openid

    seen: list[SendResult] = []
    worst_lead = 0
    async with (
        fake.client() as wx,
        wx.message.stream_many(generate(), NOTICE, max_concurrency=4) as results,
    ):
        async for result in results:
            seen.append(result)
            worst_lead = max(worst_lead, pulled - len(seen))
            await anyio.lowlevel.checkpoint()  # a reader that takes its time
    assert sorted(r.index for r in seen) == list(range(80))
    assert {r.openid for r in seen} == set(recipients)
    assert results.summary.sent == 80
    assert results.summary.complete
    # Read ahead: the buffer (2 per worker) plus the workers' own recipients.
    assert worst_lead <= 4 * _defaults.BULK_STREAM_BUFFER_PER_WORKER + 4 + 1


async def test_leaving_a_stream_early_stops_new_sends(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    recipients = users(200)
    open_windows(fake, recipients)
    taken = 0
    async with wx.message.stream_many(iter(recipients), NOTICE, max_concurrency=2) as results:
        async for _ in results:
            taken += 1
            if taken == 5:
                break
    summary = results.summary
    assert not summary.complete
    assert isinstance(summary.stopped_by, SendCancelledError)
    assert str(summary.stopped_by) == "the reader left the stream"
    assert summary.total == len(fake.requests_to(SEND)) < 200
    assert summary.sent == summary.total


def assert_stream_accounted(
    seen: list[SendResult], unread: tuple[SendResult, ...], fake: FakeWeChat, total: int
) -> None:
    """What the reader saw plus ``unread`` is every result, once; every delivery is in it."""
    everything = [*seen, *unread]
    assert len(everything) == total
    assert len({r.index for r in everything}) == total
    sent = {r.openid for r in everything if r.status is SendStatus.SENT}
    delivered = {request.json()["touser"] for request in fake.requests_to(SEND)}
    assert sent == delivered
    assert all(len(fake.sent_to(openid)) == 1 for openid in sent)


@pytest.mark.parametrize("leave", ["break", "raise", "cancel"])
async def test_leaving_a_stream_early_keeps_the_unread_results(
    fake: FakeWeChat, wx: AsyncWeChat, leave: str
) -> None:
    recipients = users(200)
    open_windows(fake, recipients)
    seen: list[SendResult] = []
    stream = wx.message.stream_many(recipients, NOTICE, max_concurrency=16)
    with anyio.CancelScope() as scope, contextlib.suppress(LookupError):
        async with stream as results:
            async for result in results:
                seen.append(result)
                assert results.unread == ()  # only once the block is left
                if len(seen) == 5:
                    if leave == "break":
                        break
                    if leave == "raise":
                        raise LookupError("storage full")
                    scope.cancel()
                    await anyio.lowlevel.checkpoint()
    summary = stream.summary
    assert not summary.complete
    assert len(seen) == 5
    unread = stream.unread
    assert unread  # the deliveries the reader never saw are all here
    assert len(unread) <= 16 * (_defaults.BULK_STREAM_BUFFER_PER_WORKER + 1)
    assert_stream_accounted(seen, unread, fake, summary.total)
    assert summary.total == len(fake.requests_to(SEND)) < 200


async def test_unread_holds_the_buffer_of_a_finished_stream(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    recipients = users(6)
    open_windows(fake, recipients)
    seen: list[SendResult] = []
    async with wx.message.stream_many(recipients, NOTICE, max_concurrency=4) as results:
        async for result in results:
            seen.append(result)
            while results.summary.total < 6:  # every send over, their results buffered
                await anyio.lowlevel.checkpoint()
            break
    assert len(results.unread) == 5
    assert all(r.status is SendStatus.SENT for r in results.unread)
    assert_stream_accounted(seen, results.unread, fake, 6)


async def test_a_stream_read_to_the_end_has_nothing_unread(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    open_windows(fake, users(20))
    async with wx.message.stream_many(users(20), NOTICE, max_concurrency=4) as results:
        seen = [result async for result in results]
    assert results.unread == ()
    assert_stream_accounted(seen, results.unread, fake, 20)


async def test_leaving_a_stopped_stream_reads_no_further(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    recipients = users(300)
    open_windows(fake, recipients)
    pulled = 0

    def generate() -> Iterator[str]:
        nonlocal pulled
        for openid in recipients:
            pulled += 1
            yield openid

    seen: list[SendResult] = []
    async with wx.message.stream_many(generate(), NOTICE, max_concurrency=2) as results:
        async for result in results:
            seen.append(result)
            if len(seen) == 1:
                results.stop()  # the rest is reported skipped, through the stream...
            if result.status is SendStatus.SKIPPED:
                break  # ... until the reader leaves: nobody wants the rest any more
    assert seen[-1].status is SendStatus.SKIPPED
    buffer = 2 * _defaults.BULK_STREAM_BUFFER_PER_WORKER
    assert pulled <= len(seen) + buffer + 2
    assert len(results.unread) <= buffer + 2
    assert not results.summary.complete
    assert_stream_accounted(seen, results.unread, fake, results.summary.total)


async def test_stream_stop_reports_the_rest_skipped(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    recipients = users(30)
    open_windows(fake, recipients)
    statuses: list[SendStatus] = []
    async with wx.message.stream_many(recipients, NOTICE, max_concurrency=1) as results:
        async for result in results:
            statuses.append(result.status)
            if len(statuses) == 3:
                results.stop()
    assert len(statuses) == 30
    assert results.summary.complete
    assert results.summary.skipped == 30 - results.summary.sent
    assert str(results.summary.stopped_by) == "the bulk send was stopped"
    assert statuses.count(SendStatus.SENT) == len(fake.requests_to(SEND))


async def test_a_failing_recipients_iterable_raises_after_accounting(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    open_windows(fake, users(3))

    def broken() -> Iterator[str]:
        yield from users(3)
        raise OSError("database went away")

    control = SendControl()
    with pytest.raises(OSError, match="database"):
        await wx.message.send_many(broken(), NOTICE, control=control)
    assert control.report is not None
    assert control.report.sent == 3
    assert control.report.total == 3
    assert not control.report.complete
    assert isinstance(control.report.stopped_by, SendCancelledError)
    assert str(control.report.stopped_by) == "reading the recipients failed: OSError"
    seen = 0

    async def read_all() -> None:
        nonlocal seen
        async with wx.message.stream_many(broken(), NOTICE) as results:
            async for _ in results:
                seen += 1

    with pytest.raises(OSError, match="database"):
        await read_all()
    assert seen == 3


class Flaky:
    """Recipients from a source that fails once (at ``fail_at``), then would go on."""

    def __init__(self, fail_at: int, total: int = 8) -> None:
        self.fail_at = fail_at
        self.total = total
        self.calls = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        self.calls += 1
        if self.calls == self.fail_at:
            raise OSError("database hiccup")
        if self.calls > self.total:
            raise StopIteration
        return f"u{self.calls:03d}"


class AsyncFlaky:
    """:class:`Flaky`, read asynchronously."""

    def __init__(self, flaky: Flaky) -> None:
        self.flaky = flaky

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        await anyio.lowlevel.checkpoint()
        try:
            return next(self.flaky)
        except StopIteration:
            raise StopAsyncIteration from None


@pytest.mark.parametrize("source", ["sync", "async"])
@pytest.mark.parametrize("when", ["sending", "skipping"])
async def test_a_source_that_failed_is_never_read_again(
    fake: FakeWeChat, wx: AsyncWeChat, source: str, when: str
) -> None:
    open_windows(fake, users(9))
    flaky = Flaky(fail_at=3)
    control = SendControl()

    def personal(openid: str) -> Message:
        if when == "skipping":
            control.stop()  # the rest is read to be reported skipped: the source fails then
        return Text(content="hi")

    with pytest.raises(OSError, match="database hiccup"):
        await wx.message.send_many(
            flaky if source == "sync" else AsyncFlaky(flaky),
            personal,
            max_concurrency=1,
            control=control,
        )
    assert flaky.calls == 3  # never asked again after it failed
    report = control.report
    assert report is not None
    # Stopped while its message was built, the first one is not sent either.
    expected = [SendStatus.SENT if when == "sending" else SendStatus.SKIPPED] * 2
    assert [r.status for r in report.results] == expected
    assert report.complete is False
    assert isinstance(report.stopped_by, SendCancelledError)


async def test_the_readers_own_exception_comes_out_unwrapped(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    open_windows(fake, users(10))
    stream = wx.message.stream_many(users(10), NOTICE, max_concurrency=2)

    async def store_fails() -> None:
        async with stream as results:
            async for _ in results:
                raise LookupError("storage full")

    with pytest.raises(LookupError, match="storage full") as caught:
        await store_fails()
    assert type(caught.value) is LookupError
    lines = [frame.line for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert 'raise LookupError("storage full")' in lines  # it still shows where it was raised
    assert stream.summary.complete is False


async def test_a_readers_exception_bounds_the_requests_in_flight(
    fake: FakeWeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_defaults, "BULK_CANCEL_GRACE", 0.02)
    recipients = users(4)
    open_windows(fake, recipients)
    gate = Gate(fake)
    async with gated_client(fake, gate, SleepRecorder()) as wx:
        await wx.access_token()
        stream = wx.message.stream_many(recipients, NOTICE, max_concurrency=2)
        gate.hold = anyio.Event()  # WeChat acts, but no answer ever comes

        async def store_fails() -> None:
            async with stream:
                while gate.in_flight < 2:
                    await anyio.lowlevel.checkpoint()
                raise LookupError("storage full")  # the reader fails before reading any

        with anyio.fail_after(5), pytest.raises(LookupError, match="storage full"):
            await store_fails()
    assert stream.summary.total == 2  # the other two were never read
    unread = stream.unread
    assert [r.status for r in unread] == [SendStatus.UNKNOWN] * 2
    assert all(isinstance(r.error, SendInterruptedError) for r in unread)
    assert gate.in_flight == 0


async def test_a_stream_must_be_entered_once(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    with pytest.raises(TypeError) as outside:
        async for _ in wx.message.stream_many(["a"], NOTICE):
            pass
    assert str(outside.value) == (
        "read a SendStream inside its context: "
        "async with wx.message.stream_many(...) as results: async for r in results"
    )
    open_windows(fake, ["a"])
    stream = wx.message.stream_many(["a"], NOTICE)
    async with stream as results:
        assert results is stream
        with pytest.raises(RuntimeError) as twice:
            await stream.__aenter__()
        assert str(twice.value) == "a SendStream can be entered once"
        assert [r.status async for r in results] == [SendStatus.SENT]


# ---------------------------------------------------------------- rate limit (fake clock)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.wakeups: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.wakeups.append(self.now + seconds)
        await anyio.lowlevel.checkpoint()


async def test_rate_limit_is_honoured(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    recipients = users(12)
    open_windows(fake, recipients)
    clock = FakeClock()
    limiter = RateLimiter(10, burst=3, clock=clock, sleep=clock.sleep)
    report = await wx.message.send_many(
        [*recipients[:6], "bad openid", *recipients[6:]], NOTICE, max_concurrency=4, rate=limiter
    )
    assert report.sent == 12
    # 3 at once, then one every 0.1 s; the bad openid took no slot (it sent nothing).
    assert clock.wakeups == pytest.approx([0.1 * k for k in range(1, 10)])


class BlockingClock:
    """A frozen clock whose sleeps last until cancelled: a rate far slower than any test."""

    def __init__(self, waiters: int = 1) -> None:
        self.now = 0.0
        self.sleeping = 0
        self.waiters = waiters
        self.all_asleep = anyio.Event()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeping += 1
        if self.sleeping >= self.waiters:
            self.all_asleep.set()
        try:
            await anyio.sleep_forever()
        finally:
            self.sleeping -= 1


@pytest.mark.parametrize("stopper", ["control", "quota"])
async def test_stop_interrupts_workers_waiting_for_the_rate(fake: FakeWeChat, stopper: str) -> None:
    recipients = users(40)
    open_windows(fake, recipients)
    gate = Gate(fake)
    gate.hold = anyio.Event()  # the first answer waits until the other workers wait
    clock = BlockingClock(waiters=15)
    limiter = RateLimiter(0.1, clock=clock, sleep=clock.sleep)  # one send every 10 s
    control = SendControl()
    reports: list[SendReport] = []
    async with gated_client(fake, gate, SleepRecorder()) as wx:
        await wx.access_token()
        if stopper == "quota":
            fake.inject(SEND, errcode=45009)

        async def run() -> None:
            reports.append(
                await wx.message.send_many(
                    recipients, NOTICE, max_concurrency=16, rate=limiter, control=control
                )
            )

        with anyio.fail_after(2):  # not the 150 s of slots reserved
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await clock.all_asleep.wait()  # the first send is out; 15 workers wait
                if stopper == "control":
                    control.stop()
                gate.hold.set()
    (report,) = reports
    assert_each_once(report, recipients)
    assert len(fake.requests_to(SEND)) == 1
    assert [r.status for r in report.results[:1]] == [
        SendStatus.SENT if stopper == "control" else SendStatus.FAILED
    ]
    assert report.skipped == 39
    assert all(r.error is report.stopped_by for r in report.results[1:])
    assert clock.sleeping == 0
    assert limiter.reserve() == 10.0  # every slot not used was given back


async def test_leaving_a_stream_interrupts_workers_waiting_for_the_rate(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    recipients = users(40)
    open_windows(fake, recipients)
    clock = BlockingClock(waiters=16)
    limiter = RateLimiter(0.1, clock=clock, sleep=clock.sleep)
    seen: list[SendResult] = []
    with anyio.fail_after(2):
        async with wx.message.stream_many(
            recipients, NOTICE, max_concurrency=16, rate=limiter
        ) as results:
            async for result in results:
                seen.append(result)
                await clock.all_asleep.wait()  # every worker now holds a recipient
                break
    assert [r.status for r in seen] == [SendStatus.SENT]
    unread = results.unread
    assert len(unread) == 16
    assert all(r.status is SendStatus.SKIPPED for r in unread)
    assert all(isinstance(r.error, SendCancelledError) for r in unread)
    assert_stream_accounted(seen, unread, fake, results.summary.total)
    assert clock.sleeping == 0


@pytest.mark.parametrize("order", ["last first", "first first"])
async def test_rate_limiter_gives_back_slots_not_used(order: str) -> None:
    clock = BlockingClock()
    limiter = RateLimiter(1, clock=clock, sleep=clock.sleep)
    await limiter.acquire()  # slot 0, used
    async with anyio.create_task_group() as tg:
        scopes = [anyio.CancelScope(), anyio.CancelScope()]

        async def wait(scope: anyio.CancelScope) -> None:
            with scope:
                await limiter.acquire()

        for scope in scopes:  # slots 1 and 2
            tg.start_soon(wait, scope)
        while clock.sleeping < 2:
            await anyio.lowlevel.checkpoint()
        for scope in scopes if order == "first first" else scopes[::-1]:
            scope.cancel()
    assert limiter.reserve() == 1.0  # as if slots 1 and 2 had never been asked for


async def test_rate_limiter_keeps_a_slot_given_back_behind_one_held() -> None:
    clock = BlockingClock()
    limiter = RateLimiter(1, clock=clock, sleep=clock.sleep)
    await limiter.acquire()  # slot 0
    async with anyio.create_task_group() as tg:
        early, late = anyio.CancelScope(), anyio.CancelScope()

        async def wait(scope: anyio.CancelScope) -> None:
            with scope:
                await limiter.acquire()

        tg.start_soon(wait, early)  # slot 1
        while clock.sleeping < 1:
            await anyio.lowlevel.checkpoint()
        tg.start_soon(wait, late)  # slot 2
        while clock.sleeping < 2:
            await anyio.lowlevel.checkpoint()
        early.cancel()
        while clock.sleeping > 1:
            await anyio.lowlevel.checkpoint()
        # Slot 1 is free but slot 2 is held: handing out slot 1 now would not be a burst
        # the bucket allows after slot 2, so the next caller gets slot 3.
        assert limiter.reserve() == 3.0
        late.cancel()
    clock.now = 100.0  # a quiet spell: nothing left to give back to
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == 1.0


def test_rate_limiter_reservations() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock)
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.25, 0.5]
    clock.now = 10.0  # quiet spell: the bucket refills, to one (burst=1)
    assert [limiter.reserve() for _ in range(2)] == [0.0, 0.25]
    half = RateLimiter(0.5, burst=2, clock=clock)
    assert [half.reserve() for _ in range(3)] == [0.0, 0.0, 2.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": -1}, "rate"),
        ({"rate": math.inf}, "finite"),
        ({"rate": 1, "burst": 0}, "burst"),
    ],
)
def test_rate_limiter_refuses_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RateLimiter(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- argument checks


_ONE_STRING: Final = "recipients must be an iterable of openids, not one string"
_CONCURRENCY: Final = "max_concurrency must be an integer >= 1, got "
BAD_ARGUMENTS: Final = [
    ("o_user", NOTICE, {}, TypeError, _ONE_STRING),
    (b"o_user", NOTICE, {}, TypeError, _ONE_STRING),
    (
        42,
        NOTICE,
        {},
        TypeError,
        "recipients must be an iterable or async iterable of openids, got int",
    ),
    (["a"], NOTICE, {"max_concurrency": 0}, ValueError, _CONCURRENCY + "0"),
    (["a"], NOTICE, {"max_concurrency": True}, ValueError, _CONCURRENCY + "True"),
    (["a"], NOTICE, {"max_concurrency": 2.0}, ValueError, _CONCURRENCY + "2.0"),
    (
        ["a"],
        NOTICE,
        {"kf_account": "nobody"},
        ValidationError,
        "kf_account: must be prefix@wechatid: a prefix of 1-10 letters, digits or "
        "underscores, '@', and the account's WeChat ID of at most 30 characters (got 'nobody')",
    ),
    (
        ["a"],
        {"text": "hi"},
        {},
        TypeError,
        "message must be a wechat_kf message or a callable openid -> message, got dict",
    ),
    (
        ["a"],
        NOTICE,
        {"rate": 0},
        ValueError,
        "rate must be a number of messages per second > 0, got 0",
    ),
]


@pytest.mark.parametrize("streaming", [False, True], ids=["send_many", "stream_many"])
@pytest.mark.parametrize(
    ("recipients", "message", "options", "error", "text"),
    BAD_ARGUMENTS,
    ids=[f"{type(r).__name__}-{sorted(o) or type(m).__name__}" for r, m, o, *_ in BAD_ARGUMENTS],
)
async def test_bad_arguments_fail_before_any_request(
    fake: FakeWeChat,
    wx: AsyncWeChat,
    streaming: bool,
    recipients: object,
    message: object,
    options: dict[str, object],
    error: type[Exception],
    text: str,
) -> None:
    async def start() -> None:
        if streaming:
            wx.message.stream_many(recipients, message, **options)  # type: ignore[arg-type]
        else:
            await wx.message.send_many(recipients, message, **options)  # type: ignore[arg-type]

    with pytest.raises(error) as caught:
        await start()
    assert str(caught.value) == text
    assert fake.requests == type(fake.requests)()


async def test_one_worker_and_a_rate_as_a_number_are_allowed(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    open_windows(fake, users(3))
    report = await wx.message.send_many(users(3), NOTICE, max_concurrency=1, rate=1e9)
    assert report.sent == 3


# ---------------------------------------------------------------- pool sizing, transports


def _pool_limits(wx: AsyncWeChat) -> tuple[int, int]:
    """(connections, keep-alive connections) the SDK's pool allows now, on any transport."""
    transport = wx._http._transport  # type: ignore[attr-defined]
    inner = getattr(transport, "_inner", transport)
    if isinstance(inner, AnyioTransport):
        return inner.pool.max_connections, inner.pool.max_connections  # every one kept alive
    limit = inner.client.connector.limit  # aiohttp's
    return limit, limit


@pytest.mark.parametrize("transport", ["anyio", "httpx"])  # "httpx": the same pool
async def test_pool_is_sized_from_max_connections_and_grows_for_send_many(
    fake: FakeWeChat, transport: str
) -> None:
    open_windows(fake, users(3))
    with fake.serve() as server:
        async with AsyncWeChat(
            fake.appid,
            fake.secret,
            base_url=server.base_url,
            max_connections=8,
            transport=transport,  # type: ignore[arg-type]
        ) as wx:
            assert _pool_limits(wx) == (8, 8)  # keep-alive = connections: never the 20 collapse
            await wx.message.send_many(users(3), NOTICE, max_concurrency=32)
            assert _pool_limits(wx) == (32, 32)
            assert wx._pipeline.max_connections == 32
            await wx.message.send_many(users(1), NOTICE, max_concurrency=4)
            assert _pool_limits(wx) == (32, 32)  # it never shrinks


@pytest.mark.parametrize("transport", ["anyio", "httpx"])  # "httpx": the same pool
async def test_default_pool_keeps_every_connection_alive(transport: str) -> None:
    async with AsyncWeChat("wxapp", "secret", transport=transport) as wx:  # type: ignore[arg-type]
        assert _pool_limits(wx) == (100, 100)


async def test_default_transport_is_aiohttp_on_asyncio_and_anyio_elsewhere(
    fake: FakeWeChat, anyio_backend: str
) -> None:
    open_windows(fake, ["a"])
    with fake.serve() as server:
        async with AsyncWeChat(fake.appid, fake.secret, base_url=server.base_url) as wx:
            selector = wx._http._transport  # type: ignore[attr-defined]
            assert selector.requested == "auto"
            await wx.message.send("a", NOTICE)
            assert selector.active == ("aiohttp" if anyio_backend == "asyncio" else "anyio")


async def test_default_transport_without_the_extra_is_anyio(
    fake: FakeWeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("wechat_kf._transport.aiohttp_installed", lambda: False)
    open_windows(fake, ["a"])
    with fake.serve() as server:
        async with AsyncWeChat(fake.appid, fake.secret, base_url=server.base_url) as wx:
            await wx.message.send("a", NOTICE)
            assert wx._http._transport.active == "anyio"  # type: ignore[attr-defined]


@pytest.mark.parametrize("transport", ["aiohttp", "auto"])
async def test_fast_transport_on_asyncio_and_fallback_on_trio(
    fake: FakeWeChat, anyio_backend: str, transport: str
) -> None:
    open_windows(fake, users(3))
    with fake.serve() as server:
        async with AsyncWeChat(
            fake.appid,
            fake.secret,
            base_url=server.base_url,
            transport=transport,  # type: ignore[arg-type]
            max_connections=6,
        ) as wx:
            selector = wx._http._transport  # type: ignore[attr-defined]
            assert selector.active is None  # chosen at the first request
            report = await wx.message.send_many(users(3), NOTICE, max_concurrency=12)
            assert report.sent == 3
            assert selector.active == ("aiohttp" if anyio_backend == "asyncio" else "anyio")
            assert _pool_limits(wx) == (12, 12)
            assert isinstance(wx._http, httpx.AsyncClient)


def test_transport_configuration_is_checked(
    fake: FakeWeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="transport"):
        AsyncWeChat("wxapp", "s", transport="curl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_connections"):
        AsyncWeChat("wxapp", "s", max_connections=0)
    with pytest.raises(ValueError, match="http_client"):
        AsyncWeChat("wxapp", "s", http_client=fake.http_client(), transport="aiohttp")
    with pytest.raises(ValueError, match="http_client"):
        AsyncWeChat("wxapp", "s", http_client=fake.http_client(), max_connections=4)
    monkeypatch.setattr("wechat_kf._transport.aiohttp_installed", lambda: False)
    with pytest.raises(ImportError, match=r"wechat_kf\[aiohttp\]"):
        AsyncWeChat("wxapp", "s", transport="aiohttp")


async def test_reset_after_sending_is_never_retried_on_every_transport(
    fake: FakeWeChat, transport: str
) -> None:
    # A dropped connection after the request left must not look like "never sent" (which the
    # pipeline would retry, sending the message twice).
    open_windows(fake, ["a", "b"])
    with fake.serve() as server:
        async with loopback_client(fake, server, transport) as wx:
            await wx.access_token()
            fake.inject(SEND, reset=True, processed=True)
            with pytest.raises(ConnectionLostError):
                await wx.message.send("a", NOTICE)
            fake.inject(SEND, reset=True, processed=True)
            report = await wx.message.send_many(["b"], NOTICE)
    assert report.results[0].status is SendStatus.UNKNOWN
    assert len(fake.requests_to(SEND)) == 2
    assert len(fake.sent_to("a")) == len(fake.sent_to("b")) == 1


async def test_read_timeout_and_refused_connection_on_every_transport(
    fake: FakeWeChat, transport: str
) -> None:
    open_windows(fake, ["a"])
    with fake.serve() as server:
        async with loopback_client(fake, server, transport, timeout=0.05) as wx:
            await wx.access_token()
            fake.inject(SEND, delay=0.3)
            with pytest.raises(ResponseTimeoutError):
                await wx.message.send("a", NOTICE)
    assert len(fake.requests_to(SEND)) == 1
    async with sdk_client(
        "wxapp", "secret", transport, base_url="http://127.0.0.1:1", sleep=SleepRecorder()
    ) as wx:
        with pytest.raises(TokenFetchError) as info:
            await wx.access_token()
    assert isinstance(info.value.__cause__, ConnectFailedError)


async def test_avatar_upload_on_every_transport(fake: FakeWeChat, transport: str) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    fake.add_agent("kf_1@service", "Ann")
    with fake.serve() as server:
        async with loopback_client(fake, server, transport) as wx:
            await wx.kf.upload_avatar("kf_1@service", png)
    assert fake.agents["kf_1@service"].headimgurl.startswith("https://mmbiz.qpic.cn/")


async def test_sdk_client_ignores_cookies() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/set":
            return httpx.Response(200, headers={"Set-Cookie": "lb=7; Path=/"}, json={})
        return httpx.Response(200, json={"seen": request.headers.get("cookie")})

    async with SDKHTTPClient(transport=httpx.MockTransport(answer)) as client:
        await client.get("https://api.weixin.qq.com/set")
        echo = await client.get("https://api.weixin.qq.com/echo")
        assert not client.cookies
    assert echo.json() == {"seen": None}
