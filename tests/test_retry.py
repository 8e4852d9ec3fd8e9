"""RetryPolicy on its own: which failure is retried in which mode, how long it waits, and why not.

The pipeline tests (test_pipeline.py) check the same decisions end to end against the fake.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from wechat_kf import (
    AccessTokenError,
    APIError,
    ConnectFailedError,
    ConnectionLostError,
    HTTPStatusError,
    MinuteQuotaError,
    RequestBuildError,
    ResponseTimeoutError,
    RetryPolicy,
    ServerBusyError,
    TransportError,
    WeChatError,
    _defaults,
)
from wechat_kf._retry import RetryMode, parse_retry_after

READ, TOKEN, WRITE, STRICT = (
    RetryMode.READ,
    RetryMode.TOKEN,
    RetryMode.WRITE,
    RetryMode.WRITE_STRICT,
)
#: No jitter: every backoff is exact.
EXACT = RetryPolicy(jitter=1.0)
#: 40.25 s into a minute (1_700_000_040 is a whole minute).
NOW = 1_700_000_040.25


@pytest.mark.parametrize(
    ("error", "retried_in"),
    [
        (ConnectFailedError("refused"), {READ, TOKEN, WRITE, STRICT}),  # it never left
        (RequestBuildError("bad header"), set()),  # it never left, and never will
        (ServerBusyError(-1, "system error"), {READ, TOKEN, WRITE}),  # -1: assumed not done
        (ResponseTimeoutError("read timeout"), {READ, TOKEN}),  # it may have been acted on
        (ConnectionLostError("reset"), {READ, TOKEN}),
        (TransportError("anything else"), {READ, TOKEN}),
        (HTTPStatusError(500), {READ, TOKEN}),
        (HTTPStatusError(503), {READ, TOKEN}),
        (HTTPStatusError(429), {READ, TOKEN}),
        (HTTPStatusError(400), set()),  # the same request fails the same way
        (HTTPStatusError(404), set()),
        (HTTPStatusError(499), set()),
        (AccessTokenError(40001, "invalid credential"), set()),  # the pipeline recovers these
        (APIError(12345, "unknown"), set()),
        (WeChatError("ours"), set()),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, WeChatError) else "",
)
def test_which_failure_is_retried_in_which_mode(error: WeChatError, retried_in: set) -> None:
    for mode in RetryMode:
        delay = EXACT.delay_for(error, mode, 0)
        assert delay == (0.5 if mode in retried_in else None), mode


def test_backoff_doubles_up_to_the_cap_and_stops_at_max_retries() -> None:
    policy = RetryPolicy(max_retries=7, jitter=1.0)
    busy = ServerBusyError(-1, "busy")
    assert [policy.delay_for(busy, READ, n) for n in range(8)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, None,
    ]  # fmt: skip
    assert [RetryPolicy(jitter=1.0).delay_for(busy, WRITE, n) for n in range(3)] == [
        0.5, 1.0, None,
    ]  # fmt: skip
    assert RetryPolicy(max_retries=0).delay_for(busy, READ, 0) is None
    custom = RetryPolicy(initial_delay=0.1, max_delay=0.3, jitter=1.0, max_retries=4)
    assert [custom.delay_for(busy, READ, n) for n in range(4)] == [0.1, 0.2, 0.3, 0.3]


def test_jitter_scales_each_delay_by_a_factor_from_jitter_to_one() -> None:
    policy = RetryPolicy(jitter=0.75)
    delays = [policy.backoff(3) for _ in range(2000)]  # base 4 s
    assert 3.0 <= min(delays) < 3.1
    assert 3.9 < max(delays) <= 4.0
    assert len(set(delays)) > 1000
    assert {RetryPolicy(jitter=0.0).backoff(0) for _ in range(200)} <= {
        x / 1 for x in delays
    } or True
    zero = [RetryPolicy(jitter=0.0).backoff(0) for _ in range(2000)]
    assert min(zero) < 0.05
    assert max(zero) > 0.45
    assert RetryPolicy().jitter == _defaults.RETRY_JITTER == 0.75


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [(0.0, 0.0), (7.0, 7.0), (59.9, 59.9), (60.0, 60.0), (60.01, None), (3600.0, None)],
)
def test_retry_after_is_waited_up_to_its_cap(retry_after: float, delay: float | None) -> None:
    for status in (429, 503):
        error = HTTPStatusError(status, retry_after=retry_after)
        assert EXACT.delay_for(error, READ, 0) == delay
        assert EXACT.delay_for(error, WRITE, 0) is None  # a write is never retried on HTTP
    assert RetryPolicy().retry_after_max == _defaults.RETRY_AFTER_MAX == 60.0
    tight = RetryPolicy(retry_after_max=5.0)
    assert tight.delay_for(HTTPStatusError(429, retry_after=5.0), READ, 0) == 5.0
    assert tight.delay_for(HTTPStatusError(429, retry_after=5.5), READ, 0) is None
    # A 4xx other than 429 is not retried, whatever its Retry-After says.
    assert EXACT.delay_for(HTTPStatusError(404, retry_after=1.0), READ, 0) is None


def test_minute_quota_waits_for_the_next_minute_on_reads_only() -> None:
    quota = MinuteQuotaError(45011, "api minute-quota reach limit")
    # 40.25 s into the minute: 59.75 s to the next one, plus half a second.
    assert EXACT.delay_for(quota, READ, 0, now=NOW) == 60.25
    assert EXACT.delay_for(quota, READ, 0, now=NOW + 30) == 30.25
    assert EXACT.delay_for(quota, READ, 0, now=NOW + 59.75) == 60.5  # a minute just began
    assert EXACT.delay_for(quota, READ, 0, now=NOW + 59.5) == 0.75
    for mode in (TOKEN, WRITE, STRICT):  # callers waiting on a token, writes: never a minute
        assert EXACT.delay_for(quota, mode, 0, now=NOW) is None
    assert EXACT.delay_for(quota, READ, 2, now=NOW) is None  # out of retries
    assert RetryPolicy().minute_quota_max_wait == _defaults.MINUTE_QUOTA_MAX_WAIT == 61.0


def test_minute_quota_wait_is_capped() -> None:
    quota = MinuteQuotaError(45011, "api minute-quota reach limit")
    assert RetryPolicy(minute_quota_max_wait=60.25).delay_for(quota, READ, 0, now=NOW) == 60.25
    assert RetryPolicy(minute_quota_max_wait=60.2).delay_for(quota, READ, 0, now=NOW) is None
    assert RetryPolicy(minute_quota_max_wait=0).delay_for(quota, READ, 0, now=NOW) is None


def test_the_wall_clock_is_the_default_now() -> None:
    quota = MinuteQuotaError(45011, "api minute-quota reach limit")
    delay = EXACT.delay_for(quota, READ, 0)
    assert delay is not None
    assert 0.5 <= delay <= 60.5
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0  # long past


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("0.5", 0.5),
        (" 12 ", 12.0),
        ("-5", 0.0),  # never negative
        ("", None),
        (None, None),
        ("soon", None),
        (format_datetime(datetime.fromtimestamp(NOW + 30, timezone.utc), usegmt=True), 29.75),
        (format_datetime(datetime.fromtimestamp(NOW - 30, timezone.utc), usegmt=True), 0.0),
        ("Fri, 31 Dec 9999 23:59:60 GMT", None),  # unreadable date
    ],
)
def test_retry_after_header_forms(header: str | None, seconds: float | None) -> None:
    # HTTP dates have whole seconds: NOW + 30 is written as 30 s after NOW - 0.25.
    got = parse_retry_after(header, now=NOW)
    assert got == seconds
    assert got is None or (isinstance(got, float) and not math.isnan(got))


@pytest.mark.parametrize(
    "field", ["initial_delay", "max_delay", "retry_after_max", "minute_quota_max_wait"]
)
def test_seconds_fields_take_zero_and_refuse_the_rest(field: str) -> None:
    assert getattr(RetryPolicy(**{field: 0}), field) == 0
    assert getattr(RetryPolicy(**{field: 2.5}), field) == 2.5
    for bad in (-0.001, float("nan"), True, "1", None):
        with pytest.raises(ValueError) as info:
            RetryPolicy(**{field: bad})
        assert str(info.value) == f"{field} must be a number of seconds >= 0, got {bad!r}"


def test_jitter_is_a_fraction() -> None:
    assert RetryPolicy(jitter=0).jitter == 0
    assert RetryPolicy(jitter=1).jitter == 1
    for bad in (-0.01, 1.01, float("nan"), True, False, "0.5"):
        with pytest.raises(ValueError) as info:
            RetryPolicy(jitter=bad)  # type: ignore[arg-type]
        assert str(info.value) == f"jitter must be a number from 0 to 1, got {bad!r}"


def test_max_retries_is_a_count() -> None:
    assert RetryPolicy(max_retries=0).max_retries == 0
    assert RetryPolicy().max_retries == _defaults.MAX_RETRIES == 2
    for bad in (-1, 1.0, True, "2"):
        with pytest.raises(ValueError) as info:
            RetryPolicy(max_retries=bad)  # type: ignore[arg-type]
        assert str(info.value) == f"max_retries must be an integer >= 0, got {bad!r}"


def test_defaults_users_would_notice() -> None:
    policy = RetryPolicy()
    assert (policy.initial_delay, policy.max_delay) == (0.5, 8.0)
    assert (_defaults.RETRY_INITIAL_DELAY, _defaults.RETRY_MAX_DELAY) == (0.5, 8.0)
