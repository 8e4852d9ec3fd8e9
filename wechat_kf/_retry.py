"""When to retry, and how long to wait first.

Two kinds of endpoint: reads (idempotent: lists, records, token fetches) and writes (a message
send, an account or session change: not idempotent). A write is retried only when the request
provably never left this process or WeChat answered ``-1`` (busy); never after a read timeout or
a dropped connection, because WeChat may already have acted on it.

Retrying a write after ``-1`` rests on an **assumption**: that WeChat did nothing with a request
it answered "system busy". WeChat's documentation says to retry later, not that nothing
happened. ``RetryMode.WRITE_STRICT`` (``busy_is_unknown=True`` on the send methods) drops it: a
``-1`` is then an outcome that may have reached WeChat, and never retried.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Awaitable, Callable

import attrs

from wechat_kf import _defaults
from wechat_kf._errors import (
    ConnectFailedError,
    HTTPStatusError,
    MinuteQuotaError,
    RequestBuildError,
    ServerBusyError,
    TransportError,
    WeChatError,
)

__all__ = ["RetryMode", "RetryPolicy"]

Sleep = Callable[[float], Awaitable[None]]


class RetryMode(enum.Enum):
    """Whether an endpoint may be retried when the outcome of an attempt is unknown.

    ``READ``: idempotent, retried on any transient failure, 45011 waits for the next minute.
    ``TOKEN``: a token fetch: like ``READ``, but never waits out 45011 (callers are waiting on
    the refresh). ``WRITE``: not idempotent: only when it never left, or on -1 (assumed to mean
    nothing was done). ``WRITE_STRICT``: only when it never left; a -1 may have been acted on.
    """

    READ = "read"
    TOKEN = "token"
    WRITE = "write"
    WRITE_STRICT = "write_strict"


def _seconds(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{attribute.name} must be a number of seconds >= 0, got {value!r}")


def _fraction(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{attribute.name} must be a number from 0 to 1, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How the SDK retries: backoff with jitter and a cap; ``Retry-After`` honoured.

    Pass one to ``AsyncWeChat(retry=...)`` or ``with_options(retry=...)``; which failures are
    retried at all is fixed (see the module docs): a write is never retried once it may have
    reached WeChat.

    Attributes:
        max_retries: Retries after the first attempt (``0``: never retry).
        initial_delay: Seconds before the first retry; doubles each retry...
        max_delay: ...up to this many seconds.
        jitter: Each delay is multiplied by a random factor in ``[jitter, 1.0]``.
        retry_after_max: The longest ``Retry-After`` waited for; a longer one is not retried.
        minute_quota_max_wait: The longest wait for the next minute after 45011 (reads only).
    """

    max_retries: int = attrs.field(default=_defaults.MAX_RETRIES)
    initial_delay: float = attrs.field(default=_defaults.RETRY_INITIAL_DELAY, validator=_seconds)
    max_delay: float = attrs.field(default=_defaults.RETRY_MAX_DELAY, validator=_seconds)
    jitter: float = attrs.field(default=_defaults.RETRY_JITTER, validator=_fraction)
    retry_after_max: float = attrs.field(default=_defaults.RETRY_AFTER_MAX, validator=_seconds)
    minute_quota_max_wait: float = attrs.field(
        default=_defaults.MINUTE_QUOTA_MAX_WAIT, validator=_seconds
    )

    @max_retries.validator
    def _check_max_retries(self, _: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {value!r}")

    def backoff(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (0-based): doubling, capped, jittered."""
        base = min(self.initial_delay * (2**attempt), self.max_delay)
        return float(base * random.uniform(self.jitter, 1.0))

    def delay_for(
        self, error: WeChatError, mode: RetryMode, attempt: int, *, now: float | None = None
    ) -> float | None:
        """Seconds to wait before retrying after ``error``, or ``None`` to give up.

        ``now`` (unix seconds, default the wall clock) is when 45011 came: a read waits for
        the next minute, half a second into it.
        """
        if attempt >= self.max_retries or isinstance(error, RequestBuildError):
            return None
        if isinstance(error, ConnectFailedError):
            return self.backoff(attempt)
        if isinstance(error, ServerBusyError):
            return None if mode is RetryMode.WRITE_STRICT else self.backoff(attempt)
        if mode is RetryMode.WRITE or mode is RetryMode.WRITE_STRICT:
            return None
        if isinstance(error, HTTPStatusError):
            if error.status_code != 429 and error.status_code < 500:
                return None
            if error.retry_after is not None:
                return error.retry_after if error.retry_after <= self.retry_after_max else None
            return self.backoff(attempt)
        if isinstance(error, TransportError):
            return self.backoff(attempt)
        if isinstance(error, MinuteQuotaError):
            if mode is not RetryMode.READ:
                return None
            wait = 60.0 - ((time.time() if now is None else now) % 60.0) + 0.5
            return wait if wait <= self.minute_quota_max_wait else None
        return None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds form, or an HTTP date after ``now``).

    ``None`` when absent or unreadable; never negative. ``now`` is unix seconds (default: the
    wall clock).
    """
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
