"""Under faults (issue 10): each failure a fault-injecting WeChat found, reproduced on real HTTP.

Every test runs against the fake on a loopback port, on each SDK transport (the ``transport``
fixture) and on asyncio and trio where the transport runs. The faults are the fake's own
(``fake.inject``: raw malformed framing, extra headers, HTTP errors, garbled answers), never a
patch of the SDK.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from wechat_kf import (
    AccessToken,
    AccessTokenError,
    AsyncWeChat,
    ConnectionLostError,
    ForceRefreshLimitedError,
    HTTPStatusError,
    MalformedResponseError,
    MemoryTokenStore,
    RequestBuildError,
    SendStatus,
    Text,
    TokenError,
    TokenFetchError,
    TokenManager,
    WeChatError,
    _defaults,
)
from wechat_kf._tokens import token_from_payload
from wechat_kf.testing import FakeWeChat

from .chains import assert_no_secret, chain_exceptions
from .conftest import OWN_HTTPX, SleepRecorder, loopback_client

pytestmark = pytest.mark.anyio

SEND = "/cgi-bin/message/custom/send"
STABLE = "/cgi-bin/stable_token"
CLASSIC = "/cgi-bin/token"
KF_LIST = "/cgi-bin/customservice/getkflist"
NOTICE = Text(content="hello")
BAD_LENGTH = b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}"
FOREVER = 10**6


@asynccontextmanager
async def loopback(fake: FakeWeChat, transport: str, **options: Any) -> AsyncIterator[AsyncWeChat]:
    """An AsyncWeChat on ``transport`` against the fake on a real loopback port; no sleeps."""
    with fake.serve() as server:
        async with loopback_client(fake, server, transport, **options) as wx:
            yield wx


def secrets_of(fake: FakeWeChat) -> list[str]:
    """Every token the fake issued, and the appsecret."""
    return [*fake.tokens, fake.secret]


# ---------------------------------------------------------------- 1. secrets in exception chains

#: Faults on the wire, each answered to one request.
WIRE_FAULTS: dict[str, dict[str, Any]] = {
    "bad-content-length": {"raw": BAD_LENGTH},
    "cut-short": {"raw": b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{"},
    "bad-status-line": {"raw": b"HTTP/1.1 OK\r\n\r\n"},
    "bad-header": {"raw": b"HTTP/1.1 200 OK\r\nX\x00: y\r\nContent-Length: 2\r\n\r\n{}"},
    "reset": {"reset": True, "processed": True},
    "timeout": {"delay": 1.0},
    "http-502": {"status": 502},
    "html": {"malformed": b"<html>access_token=ECHO</html>"},
    "truncated-json": {"malformed": b'{"errcode":0,"access_token":"ECHO'},
}


@pytest.mark.parametrize("endpoint", ["stable", "classic"])
@pytest.mark.parametrize("fault", list(WIRE_FAULTS))
async def test_no_secret_in_any_exception_chain_of_a_send(
    fake: FakeWeChat, transport: str, endpoint: str, fault: str
) -> None:
    fake.user_says("u1")
    async with loopback(fake, transport, token_endpoint=endpoint, timeout=0.2, max_retries=0) as wx:
        await wx.access_token()
        fake.inject(SEND, **WIRE_FAULTS[fault])
        with pytest.raises(WeChatError) as info:
            await wx.message.send("u1", NOTICE)
    assert len(fake.requests_to(SEND)) == 1
    assert_no_secret(info.value, secrets_of(fake))
    # No foreign exception is chained as it was raised (aiohttp's keep the URL in request_info).
    for exc in chain_exceptions(info.value):
        assert type(exc).__module__.split(".")[0] in ("wechat_kf", "httpx"), type(exc)


@pytest.mark.parametrize("endpoint", ["stable", "classic"])
@pytest.mark.parametrize("fault", list(WIRE_FAULTS))
async def test_no_secret_in_any_exception_chain_of_a_token_fetch(
    fake: FakeWeChat, transport: str, endpoint: str, fault: str
) -> None:
    # The classic endpoint takes the secret in the query string: secret=... in every URL.
    path = STABLE if endpoint == "stable" else CLASSIC
    fake.inject(path, **WIRE_FAULTS[fault], times=FOREVER)  # aiohttp retries a GET once itself
    async with loopback(
        fake, transport, token_endpoint=endpoint, token_fetch_timeout=0.2, max_retries=0
    ) as wx:
        with pytest.raises(TokenFetchError) as info:
            await wx.kf.list()
    assert info.value.may_have_reached_wechat is False
    assert fake.requests_to(KF_LIST) == []
    assert_no_secret(info.value, secrets_of(fake))


async def test_bulk_results_keep_no_secret(fake: FakeWeChat, transport: str) -> None:
    recipients = ["a", "b", "c"]
    for openid in recipients:
        fake.user_says(openid)
    async with loopback(fake, transport, token_endpoint="classic") as wx:
        await wx.access_token()
        fake.inject(SEND, raw=BAD_LENGTH, times=3)
        report = await wx.message.send_many(recipients, NOTICE)
    assert [r.status for r in report.results] == [SendStatus.UNKNOWN] * 3
    for result in report.results:
        assert isinstance(result.error, ConnectionLostError)
        assert_no_secret(result.error, secrets_of(fake))


# ---------------------------------------------------------------- 2. token failures are not sends


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500, "times": FOREVER},
        {"malformed": b"<html><body>502 Bad Gateway</body></html>", "times": FOREVER},
        {"raw": BAD_LENGTH, "times": FOREVER},
        {"delay": 1.0, "times": FOREVER},
    ],
    ids=["http-500", "html", "bad-framing", "timeout"],
)
async def test_a_token_failure_says_the_message_was_not_sent(
    fake: FakeWeChat, transport: str, fault: dict[str, Any]
) -> None:
    fake.user_says("u1")
    fake.inject(STABLE, **fault)
    async with loopback(fake, transport, token_fetch_timeout=0.05) as wx:
        with pytest.raises(TokenFetchError) as info:
            await wx.message.send("u1", NOTICE)
    error = info.value
    assert error.may_have_reached_wechat is False
    assert "nothing was sent" in str(error)
    assert isinstance(error.__cause__, WeChatError)  # what the token endpoint did
    assert fake.requests_to(SEND) == []
    assert_no_secret(error, secrets_of(fake))


async def test_html_from_the_token_endpoint_after_a_40001_is_not_a_send_outcome(
    fake: FakeWeChat, transport: str
) -> None:
    fake.user_says("u1")
    async with loopback(fake, transport) as wx:
        await wx.access_token()
        fake.inject(SEND, errcode=40001)
        fake.inject(STABLE, malformed=b"<html>busy</html>", times=FOREVER)
        with pytest.raises(TokenFetchError) as info:
            await wx.message.send("u1", NOTICE)
    assert info.value.may_have_reached_wechat is False
    assert isinstance(info.value.__cause__, MalformedResponseError)
    assert len(fake.requests_to(SEND)) == 1  # refused with 40001: not delivered
    assert fake.sent_to("u1") == []


async def test_bulk_send_stops_when_the_token_service_is_down(
    fake: FakeWeChat, transport: str
) -> None:
    recipients = [f"u{i:03d}" for i in range(300)]
    fake.inject(STABLE, status=500, times=FOREVER)
    sleeps = SleepRecorder()
    async with loopback(fake, transport, sleep=sleeps) as wx:
        report = await wx.message.send_many(recipients, NOTICE)
    assert report.total == 300
    assert report.sent == report.unknown == 0
    assert isinstance(report.stopped_by, TokenFetchError)
    assert 1 <= report.failed <= _defaults.BULK_MAX_CONCURRENCY  # the workers already waiting
    assert report.skipped == 300 - report.failed
    for result in report.results:
        assert isinstance(result.error, TokenError)
    assert fake.requests_to(SEND) == []
    # One fetch (with its retries) for the whole run, not one per recipient; no lock timeouts.
    assert len(fake.token_requests) == 1 + _defaults.MAX_RETRIES
    assert len(sleeps.delays) == _defaults.MAX_RETRIES


async def test_a_failed_fetch_is_remembered_briefly_then_retried() -> None:
    now = [1_000_000.0]
    calls: list[bool] = []

    async def down(force_refresh: bool) -> AccessToken:
        calls.append(force_refresh)
        raise HTTPStatusError(503, method="POST", path=STABLE)

    manager = TokenManager(
        appid="wxdown", store=MemoryTokenStore(), fetch=down, clock=lambda: now[0]
    )
    with pytest.raises(TokenFetchError) as first:
        await manager.get()
    assert first.value.next_attempt_at == now[0] + _defaults.TOKEN_REFRESH_BACKOFF
    now[0] += _defaults.TOKEN_REFRESH_BACKOFF / 2
    with pytest.raises(TokenFetchError, match=r"remembered: next attempt in 2\.5 s") as again:
        await manager.get()
    assert isinstance(again.value.__cause__, HTTPStatusError)
    assert len(calls) == 1  # no request while the failure is remembered
    now[0] += _defaults.TOKEN_REFRESH_BACKOFF
    with pytest.raises(TokenFetchError):
        await manager.get()
    assert len(calls) == 2


# ---------------------------------------------------------------- 3. the 40001 token storm


async def _burst(wx: AsyncWeChat, n: int) -> list[BaseException]:
    errors: list[BaseException] = []

    async def send(i: int) -> None:
        try:
            await wx.message.send(f"u{i:03d}", NOTICE)
        except WeChatError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(send, i)
    return errors


async def test_rejected_tokens_cause_no_token_storm(fake: FakeWeChat, transport: str) -> None:
    fake.inject(SEND, errcode=40001, times=FOREVER)  # WeChat rejects every token it hands out
    async with loopback(fake, transport) as wx:
        await wx.access_token()
        before = len(fake.token_requests)
        first = await _burst(wx, 100)
        first_burst = len(fake.token_requests) - before
        second = await _burst(wx, 100)  # within 30 s of the force refresh
        second_burst = len(fake.token_requests) - before - first_burst
    # First burst: the re-fetch (same stable token) and one force_refresh.
    assert first_burst == 2
    assert len(fake.force_refreshes) == 1
    assert len(first) == 100
    assert all(isinstance(e, AccessTokenError | ForceRefreshLimitedError) for e in first)
    # Second burst: one re-fetch learns the token is still current; the refused force refresh is
    # remembered for that token, so the other 99 rejections make no token request at all.
    assert second_burst == 1
    assert len(second) == 100
    limited = [e for e in second if isinstance(e, ForceRefreshLimitedError)]
    assert len(limited) == 100
    for error in limited:
        assert error.may_have_reached_wechat is False
        assert error.next_attempt_at is not None
        assert 0 < error.next_attempt_at - time.time() <= _defaults.FORCE_REFRESH_MIN_INTERVAL
        assert "force_refresh" in str(error)
        assert " s" in str(error).rsplit("in ", 1)[1]  # "... in 30 s": when it is possible


class SameToken:
    """A token endpoint that keeps handing out one token (WeChat's stable endpoint does)."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    async def __call__(self, force_refresh: bool) -> AccessToken:
        self.calls.append(force_refresh)
        return AccessToken("T-stuck", time.time() + 7200)


async def test_a_refused_force_refresh_is_remembered_per_token_until_it_is_possible() -> None:
    now = [time.time()]
    fetch = SameToken()
    manager = TokenManager(
        appid="wxstuck", store=MemoryTokenStore(), fetch=fetch, clock=lambda: now[0]
    )
    token = await manager.get()
    with pytest.raises(ForceRefreshLimitedError):  # force_refresh returned the same token
        await manager.recover(token)
    assert fetch.calls == [False, False, True]
    errors: list[ForceRefreshLimitedError] = []

    async def reject() -> None:
        with pytest.raises(ForceRefreshLimitedError) as info:
            await manager.recover(token)
        errors.append(info.value)

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(reject)
    assert fetch.calls == [False, False, True]  # 50 rejections: no token request
    assert {e.next_attempt_at for e in errors} == {now[0] + _defaults.FORCE_REFRESH_MIN_INTERVAL}
    now[0] += _defaults.FORCE_REFRESH_MIN_INTERVAL + 1
    with pytest.raises(ForceRefreshLimitedError):
        await manager.recover(token)
    assert fetch.calls == [False, False, True, False, True]  # possible again: tried again


# ---------------------------------------------------------------- 5. foreign exceptions


async def test_a_non_ascii_cookie_does_not_poison_the_client(
    fake: FakeWeChat, transport: str
) -> None:
    recipients = ["a", "b", "c"]
    for openid in recipients:
        fake.user_says(openid)
    fake.inject(STABLE, headers={"Set-Cookie": "sid=caf\xe9; Path=/"})
    fake.inject(KF_LIST, headers=[("Set-Cookie", "lb=caf\xe9"), ("Set-Cookie", "x=1")])
    async with loopback(fake, transport) as wx:
        if transport == OWN_HTTPX:
            # A caller's own client keeps cookies (httpx's jar: the token's answer set one),
            # and httpx cannot encode that one: every later request fails before it leaves,
            # as a typed error that says so.
            seen = len(fake.requests_to(KF_LIST))
            with pytest.raises(RequestBuildError) as info:
                await wx.kf.list()
            assert info.value.may_have_reached_wechat is False
            assert "UnicodeEncodeError" in str(info.value)
            assert len(fake.requests_to(KF_LIST)) == seen == 0
            return
        assert await wx.kf.list() == []
        assert await wx.kf.list() == []
        report = await wx.message.send_many(recipients, NOTICE)
    assert report.sent == 3
    assert all("cookie" not in request.headers for request in fake.requests)


@pytest.mark.parametrize(
    "answer",
    [
        b'{"access_token":"abc\\u0000def","expires_in":7200}',
        b'{"access_token":"abc def","expires_in":7200}',
        b'{"access_token":"abc&x=1","expires_in":7200}',
        b'{"access_token":"' + b"x" * 5000 + b'","expires_in":7200}',
        b'{"access_token":"ok-token","expires_in":1' + b"0" * 400 + b"}",
        b'{"access_token":"ok-token","expires_in":1e400}',
        b'{"access_token":"ok-token","expires_in":-5}',
        b'{"access_token":"ok-token","expires_in":"' + b"9" * 5000 + b'"}',
    ],
    ids=["nul", "space", "ampersand", "too-long", "10**400", "inf", "negative", "huge-string"],
)
async def test_an_unusable_token_answer_is_malformed_and_never_cached(
    fake: FakeWeChat, transport: str, answer: bytes
) -> None:
    store = MemoryTokenStore()
    fake.inject(STABLE, malformed=answer)
    async with loopback(fake, transport, token_store=store) as wx:
        with pytest.raises(TokenFetchError) as info:
            await wx.kf.list()
    assert isinstance(info.value.__cause__, MalformedResponseError)
    assert "ok-token" not in str(info.value)  # the rule is named, never the value
    assert await store.get(fake.appid) is None
    assert fake.requests_to(KF_LIST) == []


@pytest.mark.parametrize(
    ("payload", "lifetime"),
    [
        ({"access_token": "80_AbC-x_9", "expires_in": 7200}, 7200),
        ({"access_token": "a.b~c:d", "expires_in": "7200"}, 7200),
        ({"access_token": "x" * _defaults.TOKEN_MAX_LENGTH, "expires_in": 7200.0}, 7200),
        ({"access_token": "t", "expires_in": _defaults.TOKEN_MAX_LIFETIME}, None),
    ],
)
def test_usable_token_answers_are_accepted(payload: dict[str, Any], lifetime: int | None) -> None:
    token = token_from_payload(payload, 1000.0)
    assert token.value == payload["access_token"]
    assert token.expires_at == 1000.0 + (lifetime or _defaults.TOKEN_MAX_LIFETIME)


@pytest.mark.parametrize(
    "payload",
    [
        {"access_token": "t", "expires_in": True},
        {"access_token": "t", "expires_in": 0},
        {"access_token": "t", "expires_in": _defaults.TOKEN_MAX_LIFETIME + 1},
        {"access_token": "t", "expires_in": 7200.5},
        {"access_token": "t", "expires_in": float("nan")},
        {"access_token": "t", "expires_in": "7200s"},
        {"access_token": "t"},
        {"access_token": "tök", "expires_in": 7200},
        {"access_token": "a#b", "expires_in": 7200},
        {"access_token": "a%20b", "expires_in": 7200},
        {"access_token": "a+b", "expires_in": 7200},
        {"access_token": "", "expires_in": 7200},
        {"access_token": 123, "expires_in": 7200},
    ],
)
def test_unusable_token_answers_are_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponseError):
        token_from_payload(payload, 1000.0)
