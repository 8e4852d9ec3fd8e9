"""Every exception the SDK raises.

WeChat answers almost every failure with HTTP 200 and ``{"errcode": N, "errmsg": "..."}``, so the
hierarchy is errcode-first: one table (:data:`ERRCODE_CLASSES`) maps each documented code to the
class that says what it means. Everything derives from :class:`WeChatError`::

    WeChatError                       (.may_have_reached_wechat: False unless it may have)
    ├── APIError                      WeChat answered with errcode != 0 (.errcode .errmsg .rid)
    │   ├── ServerBusyError           -1: system busy (retried with backoff; see busy_is_unknown)
    │   ├── AccessTokenError          40001 40014 42001 41001: token invalid, not latest, expired
    │   ├── ConfigurationError        40013 40125 40164 61004 89503 40243 40002: fix appid/secret/IP
    │   ├── UnauthorizedError         48001: this account may not call the API
    │   ├── RateLimitError            quota family
    │   │   ├── DailyQuotaError       45009: daily quota reached, never retried
    │   │   └── MinuteQuotaError      45011: per-minute quota, reads wait for the next minute
    │   ├── ResponseWindowError       45015: the user has not written within 48 h
    │   ├── ResponseQuotaError        45047: the messages allowed in the window are used up
    │   ├── TypingError               45072 45080 45081: typing command, exchange, already typing
    │   ├── CustomerServiceError      65400-65417: agent accounts, sessions, records
    │   └── InvalidRequestError       40003 40033 41002 43002 43004 44002 44004 45002 45008 47001
    │       │                         ...: WeChat refused the request's content
    │       └── MediaError            a media upload, download or media_id refused
    │           ├── MediaTypeError    40004 40005: not a media type, or a file of the wrong format
    │           ├── MediaSizeError    40006 40009 40010 40011 40012 45001: the file's size
    │           └── InvalidMediaIdError  40007: unknown media_id, or a temporary one past 3 days
    ├── TransportError                no usable HTTP answer (chains the httpx cause)
    │   ├── ConnectFailedError        the request never left: safe to retry
    │   ├── RequestBuildError         the HTTP client could not build the request: never sent
    │   ├── ResponseTimeoutError      sent, no answer in time: it may have reached WeChat
    │   ├── ConnectionLostError       dropped mid-exchange: it may have reached WeChat
    │   ├── HTTPStatusError           HTTP 4xx/5xx from WeChat or a proxy
    │   └── SendInterruptedError      bulk send cancelled with this request in flight: it may
    │                                 have reached WeChat
    ├── MalformedResponseError        the body is not the JSON shape WeChat documents
    ├── SendCancelledError            bulk send: why a recipient was skipped (stopped, cancelled)
    ├── MessageBuildError             bulk send: the message callable failed for a recipient
    ├── UnreachableError              skip_unreachable: the window ledger knows the user is
    │                                 outside their service window or out of messages
    ├── TokenError                    the SDK could not get an access token: nothing was sent
    │   ├── TokenFetchError           the token endpoint failed (HTTP error, timeout, bad answer)
    │   ├── TokenRefreshTimeoutError  waiting for another caller's refresh took too long
    │   ├── ForceRefreshLimitedError  stable_token force_refresh limit (20/day, 30 s apart)
    │   ├── TokenUnavailableError     read-only store holds no usable token
    │   └── TokenStoreError           the token store (Redis) failed or timed out (a StoreError)
    ├── StoreError                    a pluggable store (Redis) failed or timed out; every
    │   │                             store's own error derives from it as well
    │   ├── MediaStoreError           the media-id store failed (logged: the SDK uploads anyway)
    │   └── WindowStoreError          the service-window store (Redis) failed
    ├── CallbackError                 a push to your server was refused (wechat_kf.callback)
    │   ├── SignatureError            signature / msg_signature missing or wrong
    │   │   └── PlaintextPushError    safe mode: a push without encrypt_type=aes (allow_plaintext)
    │   ├── StaleTimestampError       timestamp outside the freshness window
    │   ├── AppIdMismatchError        the decrypted message names another appid
    │   ├── DecryptError              Encrypt cannot be decrypted (base64, length, padding, key)
    │   ├── BodyTooLargeError         body above max_body_size
    │   ├── XMLParseError             not well-formed XML (or the root is not <xml>)
    │   │   ├── HostileXMLError       DOCTYPE, entity declaration or external entity: refused
    │   │   └── XMLLimitError         more elements or deeper nesting than a push has: refused
    │   ├── MalformedCallbackError    well-formed, but not the documented shape
    │   ├── DuplicateStoreError       the shared duplicate store (Redis) failed (a StoreError)
    │   └── MissingDependencyError    (also ImportError) safe mode without cryptography
    ├── ClientUsageError (RuntimeError)  the client cannot be used here: nothing was sent
    │   ├── ClientClosedError         used after aclose()
    │   └── EventLoopChangedError     used from another event loop than the one it started in
    └── ValidationError (ValueError)  bad input caught before any request (.field .limit)

No exception here carries an access token, a secret or an AES key, anywhere in its chain: messages
are built from errcodes, WeChat's ``errmsg`` (redacted) and redacted text, and a foreign exception
is never chained as it was raised: ``__cause__`` is a scrubbed copy (an httpx exception whose
URL and text are redacted, or a :class:`~wechat_kf._redaction.ScrubbedCause` naming the original).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Final

__all__ = [
    "ERRCODE_CLASSES",
    "APIError",
    "AccessTokenError",
    "ClientClosedError",
    "ClientUsageError",
    "ConfigurationError",
    "ConnectFailedError",
    "ConnectionLostError",
    "CustomerServiceError",
    "DailyQuotaError",
    "EventLoopChangedError",
    "ForceRefreshLimitedError",
    "HTTPStatusError",
    "InvalidMediaIdError",
    "InvalidRequestError",
    "MalformedResponseError",
    "MediaError",
    "MediaSizeError",
    "MediaStoreError",
    "MediaTypeError",
    "MessageBuildError",
    "MinuteQuotaError",
    "RateLimitError",
    "RequestBuildError",
    "ResponseQuotaError",
    "ResponseTimeoutError",
    "ResponseWindowError",
    "SendCancelledError",
    "SendInterruptedError",
    "ServerBusyError",
    "StoreError",
    "TokenError",
    "TokenFetchError",
    "TokenRefreshTimeoutError",
    "TokenStoreError",
    "TokenUnavailableError",
    "TransportError",
    "TypingError",
    "UnauthorizedError",
    "UnreachableError",
    "ValidationError",
    "WeChatError",
    "WindowStoreError",
    "api_error",
]


class WeChatError(Exception):
    """Base class of every exception raised by wechat_kf.

    ``may_have_reached_wechat`` tells whether WeChat may have acted on the request the error is
    about. It is ``False`` unless the request left and no answer says what happened (transport
    errors after sending, a garbled answer): a failure before any request left (bad input, no
    access token, a closed client) is never "may have reached WeChat".
    """

    may_have_reached_wechat: bool = False


# --------------------------------------------------------------------------- API errors

_RID = re.compile(r"(?:rid:\s*|hint:\s*\[)([0-9A-Za-z._-]+)")


def parse_rid(errmsg: str) -> str | None:
    """Return the request id WeChat appends to ``errmsg`` (``rid: x`` or ``hint: [x]``)."""
    match = _RID.search(errmsg)
    return match.group(1) if match else None


class APIError(WeChatError):
    """WeChat answered with a non-zero ``errcode``.

    ``rid`` is the request id parsed from ``errmsg``: quote it to WeChat support.
    ``hint`` is a sentence from this SDK that says what the code means or what to fix.
    """

    hint: str = ""

    def __init__(self, errcode: int, errmsg: str, *, hint: str | None = None) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.rid: str | None = parse_rid(errmsg)
        if hint is not None:
            self.hint = hint
        text = f"errcode {errcode}: {errmsg}"
        if self.hint:
            text = f"{text} ({self.hint})"
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.errcode, self.errmsg), {**vars(self), "hint": self.hint})


class ServerBusyError(APIError):
    """-1: WeChat is busy. Retried with backoff by the SDK before it reaches you.

    The retry rests on an **assumption**: that WeChat did nothing with a request it answered
    ``-1``. WeChat documents ``-1`` as "system busy, retry later" but does not say that the
    request had no effect. Sends made with ``busy_is_unknown=True`` drop the assumption: a ``-1``
    is not retried and the error has ``may_have_reached_wechat = True`` (bulk sends report the
    recipient ``unknown``).
    """

    hint = "WeChat is busy; retry later"


class AccessTokenError(APIError):
    """The access token was rejected (40001 invalid / not latest, 40014, 42001 expired, 41001)."""


class ConfigurationError(APIError):
    """The appid, appsecret or server IP is wrong. Never retried: fix the configuration."""


class UnauthorizedError(APIError):
    """48001: this official account is not authorized to call the API. Never retried."""

    hint = "the account lacks this API permission (verified service account required)"


class RateLimitError(APIError):
    """A call quota was reached."""


class DailyQuotaError(RateLimitError):
    """45009: the daily call quota is used up. Never retried; resets at midnight (UTC+8)."""

    hint = "daily API quota reached; it resets at 00:00 Beijing time"


class MinuteQuotaError(RateLimitError):
    """45011: the per-minute frequency limit. Reads wait for the next minute, bounded."""

    hint = "per-minute API frequency limit reached"


class ResponseWindowError(APIError):
    """45015: the user has not written to the account within 48 hours.

    Customer-service messages may only answer a user interaction; fall back to a template
    message or wait for the user to write.
    """

    hint = "outside the 48-hour response window: the user must write first"


class ResponseQuotaError(APIError):
    """45047: the messages allowed since the user's last interaction are used up."""

    hint = "the messages allowed in this response window are used up"


class TypingError(APIError):
    """45072 bad command, 45080 no exchange in the last 30 s, 45081 already typing."""


class CustomerServiceError(APIError):
    """65400-65417: agent accounts, sessions and chat records."""


class InvalidRequestError(APIError):
    """WeChat refused the content of the request (bad openid, media id, too long, ...)."""


class MediaError(InvalidRequestError):
    """WeChat refused a media file or a ``media_id`` (upload, download, or a message's media)."""


class MediaTypeError(MediaError):
    """40004 the ``type`` is not image/voice/video/thumb, 40005 the file's format does not fit."""


class MediaSizeError(MediaError):
    """40006 40009-40012 45001: the file is larger (or smaller) than WeChat takes for its type.

    The SDK checks the documented limits before uploading (images 10 MB, voice 2 MB and 60 s,
    video 10 MB, thumbnails 64 KB); older WeChat pages say 2 MB for images.
    """


class InvalidMediaIdError(MediaError):
    """40007: WeChat knows no such ``media_id``: a typo, another account's, or a temporary
    media uploaded more than 3 days ago. A message whose file the SDK uploaded is re-uploaded
    and sent once more when a send answers this.
    """


_HINTS: Final[Mapping[int, str]] = {
    40001: "access token invalid or not the latest",
    40002: "invalid grant_type",
    40003: "invalid openid for this account",
    40004: "invalid media type: image, voice, video or thumb",
    40005: "unsupported file format for this media type (an avatar: JPEG or PNG)",
    40006: "invalid file size",
    40007: "invalid media_id: unknown, or a temporary media older than 3 days",
    40009: "invalid image size (avatars at most 5 MB; images 10 MB, older docs: 2 MB)",
    40010: "invalid voice size (at most 2 MB and 60 s)",
    40011: "invalid video size (at most 10 MB)",
    40012: "invalid thumbnail size (at most 64 KB)",
    40013: "invalid appid: check the AppID in the WeChat admin console",
    40014: "invalid access token",
    40033: "the body contained \\uXXXX escapes",
    40125: "invalid appsecret: check or reset the AppSecret in the admin console",
    40164: "this server's IP is not in the account's IP whitelist: add it in the admin console",
    40243: "the AppSecret is frozen: unfreeze or reset it in the admin console",
    41001: "access token missing",
    41002: "appid missing",
    42001: "access token expired",
    43002: "wrong HTTP method",
    43004: "the user must follow the account",
    44002: "empty POST body",
    44004: "empty text content",
    45002: "content too long",
    45001: "the media file is too large",
    45008: "a news message holds at most 1 article",
    45072: "command must be Typing or CancelTyping",
    45080: "typing needs a message exchange with the user in the last 30 s",
    45081: "already typing: the state lasts 15 s",
    47001: "malformed JSON body",
    61004: "this server's IP is not allowed for the account: check the IP whitelist",
    65400: "API unavailable: the new customer-service feature is not enabled",
    65401: "invalid agent account",
    65403: "invalid agent nickname",
    65404: "invalid agent account format",
    65405: "the account limit (100 agents) is reached",
    65406: "the agent account already exists",
    65407: "the invitee is already an agent of this account",
    65408: "this account already invited that WeChat user",
    65409: "invalid WeChat ID",
    65410: "the invitee is bound to the maximum of 5 accounts",
    65411: "the agent already has a pending invitation",
    65412: "the agent is already bound to a WeChat user",
    65413: "no session exists for this user",
    65414: "the user is served by another agent",
    65415: "the agent is not online",
    65416: "invalid parameters",
    65417: "the time range exceeds 24 hours",
    89503: "this server's IP awaits the administrator's confirmation in the admin console",
}

#: The one table from errcode to exception class. Codes not listed raise plain :class:`APIError`.
ERRCODE_CLASSES: Final[Mapping[int, type[APIError]]] = {
    -1: ServerBusyError,
    **dict.fromkeys((40001, 40014, 41001, 42001), AccessTokenError),
    **dict.fromkeys((40002, 40013, 40125, 40164, 40243, 61004, 89503), ConfigurationError),
    48001: UnauthorizedError,
    45009: DailyQuotaError,
    45011: MinuteQuotaError,
    45015: ResponseWindowError,
    45047: ResponseQuotaError,
    **dict.fromkeys((45072, 45080, 45081), TypingError),
    **dict.fromkeys(range(65400, 65418), CustomerServiceError),
    **dict.fromkeys(
        (40003, 40033, 41002, 41005, 41006, 43002, 43004, 44002, 44004, 45002, 45008, 47001),
        InvalidRequestError,
    ),
    **dict.fromkeys((40004, 40005), MediaTypeError),
    **dict.fromkeys((40006, 40009, 40010, 40011, 40012, 45001), MediaSizeError),
    40007: InvalidMediaIdError,
}

#: On the token endpoints 40001 means "wrong appsecret", not "stale token".
_TOKEN_ENDPOINT_CLASSES: Final[Mapping[int, type[APIError]]] = {
    **ERRCODE_CLASSES,
    40001: ConfigurationError,
}
_TOKEN_ENDPOINT_HINTS: Final[Mapping[int, str]] = {
    40001: "invalid appsecret (or it does not belong to this appid)",
}


def api_error(errcode: int, errmsg: str, *, token_endpoint: bool = False) -> APIError:
    """Build the exception that ``errcode`` means (the one table lookup)."""
    classes = _TOKEN_ENDPOINT_CLASSES if token_endpoint else ERRCODE_CLASSES
    cls = classes.get(errcode, APIError)
    hint = (_TOKEN_ENDPOINT_HINTS.get(errcode) if token_endpoint else None) or _HINTS.get(errcode)
    return cls(errcode, errmsg, hint=hint)


# --------------------------------------------------------------------------- transport errors


class TransportError(WeChatError):
    """No usable HTTP answer. ``__cause__`` is the httpx exception (its URL redacted).

    ``may_have_reached_wechat`` tells whether WeChat may have acted on the request: it is
    ``False`` only when the request provably never left this process.
    """

    may_have_reached_wechat: bool = True

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        self.method = method
        self.path = path
        where = f"{method} {path}: " if path else ""
        super().__init__(f"{where}{message}")


class ConnectFailedError(TransportError):
    """The request never left (DNS, refused, connect or pool timeout): safe to retry."""

    may_have_reached_wechat = False


class RequestBuildError(TransportError):
    """The HTTP client could not build the request (an invalid URL or header): never sent.

    Never retried: the same request fails the same way.
    """

    may_have_reached_wechat = False


class ResponseTimeoutError(TransportError):
    """The request was sent but no answer came in time: WeChat may have acted on it."""


class ConnectionLostError(TransportError):
    """The connection broke after the request started: WeChat may have acted on it."""


class HTTPStatusError(TransportError):
    """WeChat (or a proxy in front of it) answered with HTTP 4xx/5xx."""

    def __init__(
        self,
        status_code: int,
        *,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status_code = status_code
        self.retry_after = retry_after
        # A 429 is a refusal before processing; a 5xx may come after WeChat acted.
        self.may_have_reached_wechat: bool = status_code != 429
        super().__init__(f"HTTP {status_code}", method=method, path=path)

    def __reduce__(self) -> tuple[object, ...]:
        return (
            type(self),
            (self.status_code,),
            {"method": self.method, "path": self.path, "retry_after": self.retry_after},
        )


class SendInterruptedError(TransportError):
    """A bulk send was cancelled while this request was in flight: it may have reached WeChat."""


class MalformedResponseError(WeChatError):
    """The response body is not the JSON shape WeChat documents (``__cause__`` says why).

    Something answered, so WeChat may have acted on the request (``may_have_reached_wechat``).
    """

    may_have_reached_wechat = True

    def __init__(self, message: str, *, body_excerpt: str = "") -> None:
        self.body_excerpt = body_excerpt
        super().__init__(f"{message}: {body_excerpt!r}" if body_excerpt else message)


# --------------------------------------------------------------------------- bulk sends


class SendCancelledError(WeChatError):
    """The reason a recipient was ``skipped``: the bulk send was stopped or cancelled first."""


class MessageBuildError(WeChatError):
    """The message callable of a personalised bulk send failed for this recipient.

    ``__cause__`` is what it raised (or the ``TypeError`` for something that is not a message).
    A :class:`WeChatError` it raises (e.g. a :class:`ValidationError` from building the message)
    is reported as is, not wrapped.
    """


class UnreachableError(WeChatError):
    """Not sent: the window ledger knows this user cannot be messaged now (``skip_unreachable``).

    ``reason`` is ``"outside_window"`` (no service window open: WeChat would answer 45015) or
    ``"no_messages_left"`` (the open windows' messages are used up: 45047). ``until`` is when the
    last window ended, or ends, if the ledger knows (aware UTC ``datetime``). No request was made.
    """

    def __init__(self, openid: str, reason: str, until: datetime | None = None) -> None:
        self.openid = openid
        self.reason = reason
        self.until = until
        if reason == "no_messages_left":
            text = "the messages allowed in the user's service window are used up"
            if until is not None:
                text += f" (the window ends {until.isoformat()})"
        else:
            text = "the user is outside their service window"
            if until is not None:
                text += f" (it ended {until.isoformat()})"
        super().__init__(f"{text}: not sent (skip_unreachable)")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.openid, self.reason, self.until))


# --------------------------------------------------------------------------- token errors


class TokenError(WeChatError):
    """The SDK could not obtain a usable access token, so the call's request was never sent.

    ``next_attempt_at`` (unix time, or ``None``) is when the SDK asks WeChat for a token again;
    calls before then fail at once with the same error instead of waiting on a failing service.
    """

    def __init__(self, message: str, *, next_attempt_at: float | None = None) -> None:
        self.next_attempt_at = next_attempt_at
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self),), vars(self))


class TokenFetchError(TokenError):
    """The token endpoint gave no usable token: HTTP error, timeout, lost connection, busy,
    quota, or an answer that is not a token (HTML, bad JSON, an unusable ``access_token`` or
    ``expires_in``). ``__cause__`` is that error (e.g. :class:`HTTPStatusError`,
    :class:`MalformedResponseError`).

    The call that needed the token was not sent. A wrong appid, secret or IP is not this error
    but :class:`ConfigurationError`: fix the configuration.
    """


class TokenRefreshTimeoutError(TokenError):
    """Waiting for the token refresh (or its lock) exceeded the configured timeout."""


class ForceRefreshLimitedError(TokenError):
    """A ``force_refresh`` of the stable token was needed but its documented limit forbids it.

    WeChat allows 20 forced refreshes per day, at least 30 seconds apart. The SDK remembers the
    refusal for the rejected token: until ``next_attempt_at`` every call that sees that token
    rejected fails at once with this error, without asking WeChat again.
    """


class TokenUnavailableError(TokenError):
    """A read-only token store holds no usable token for this appid."""


class StoreError(WeChatError):
    """A pluggable store (Redis, or one of yours) failed, timed out or holds a malformed entry.

    ``__cause__`` is the backend's exception. Every store the SDK ships raises a subclass that
    also says what the store is for (:class:`TokenStoreError`, the callback side's
    ``DuplicateStoreError``), so ``except StoreError`` catches any store outage.
    """


class WindowStoreError(StoreError):
    """The service-window store (Redis) failed, timed out or holds a malformed entry.

    ``__cause__`` is the backend's exception. A send never fails because of it: the ledger logs
    the failure and the send goes ahead as for a user it knows nothing about.
    """


class MediaStoreError(StoreError):
    """The media-id store (Redis) failed or timed out, or holds a malformed entry.

    A cache outage never stops a send: the SDK logs it and uploads without the cache (each
    process then uploads a file once for itself).
    """


class TokenStoreError(TokenError, StoreError):
    """The token store failed (Redis unreachable, timed out, or holding a malformed entry).

    ``__cause__`` is the backend's exception. Raised within the store's own timeout: a store
    outage is never a silent unbounded wait.
    """


# --------------------------------------------------------------------------- client use


class ClientUsageError(WeChatError, RuntimeError):
    """The client cannot be used here (closed, or another event loop): nothing was sent."""


class ClientClosedError(ClientUsageError):
    """The client was used after ``aclose()`` (or its HTTP client was closed by its owner).

    Create the client when your application starts, close it once at shutdown (``async with
    AsyncWeChat(...)`` around the application's lifetime, e.g. in a lifespan handler).
    """


class EventLoopChangedError(ClientUsageError):
    """The client was used from another event loop than the one it made its first call in.

    Its connections (and locks) belong to the first loop. Typical cause: ``asyncio.run()`` called
    more than once (Django views through ``async_to_sync``, Celery tasks, cron scripts) with one
    client made at import time. Create one client per event loop, inside it (``async with
    AsyncWeChat(...)`` in the coroutine that ``asyncio.run`` runs), and close it there.
    """


# --------------------------------------------------------------------------- validation


class ValidationError(WeChatError, ValueError):
    """Bad input caught before any request was made.

    ``field`` names the offending argument or attribute; ``limit`` states the documented rule.
    """

    def __init__(self, field: str, limit: str, value: object = None) -> None:
        self.field = field
        self.limit = limit
        self.value = value
        super().__init__(f"{field}: {limit}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.field, self.limit, self.value))
