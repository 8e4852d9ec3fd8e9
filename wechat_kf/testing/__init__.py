"""A stateful fake of the WeChat API for tests: yours and ours.

In-process (no sockets)::

    from wechat_kf.testing import FakeWeChat

    fake = FakeWeChat()
    async with fake.client() as wx:          # an AsyncWeChat wired to the fake
        await wx.access_token()
    assert len(fake.token_requests) == 1

On a real loopback port::

    with fake.serve() as server:
        async with AsyncWeChat(fake.appid, fake.secret, base_url=server.base_url) as wx:
            ...

Seed the customer-service world with ``fake.add_agent("alice@gh_test", online=True)``, play a
follower with ``fake.user_says(openid)`` (opens the 48 h response window; ``user_clicks_menu``,
``user_follows``, ``user_scans`` open the 1-minute one), and assert on ``fake.sent_to(openid)``,
``fake.sessions``, ``fake.waiting`` and ``fake.records``. ``fake.pushes`` holds the pushes those
interactions would send to your server, to feed your callback endpoint. Media: a send naming a
media_id the fake does not hold (or one past its 3 days) answers 40007; seed one with
``fake.add_media("image")`` (or upload it) and count uploads on ``fake.uploads``. A bot's slow
answer runs in no time on a ``VirtualClock(follow=fake.clock)`` given to
``CallbackEndpoint(clock=...)``: the test moves it.

Script failures with ``fake.inject(path, errcode=45015)`` (or ``status=503``, ``delay=2``,
``reset=True``, ``malformed=b"<html>"``, ``raw=b"HTTP/1.1 200 OK\\r\\nContent-Length: abc..."``,
``headers={"Set-Cookie": ...}``), move time with ``fake.clock.advance(7200)``, and assert
on ``fake.requests``. With pytest, add ``pytest_plugins = ["wechat_kf.testing.pytest_plugin"]`` to
your ``conftest.py`` for the ``fake_wechat`` and ``fake_wechat_server`` fixtures.
"""

import warnings
from typing import Any

from wechat_kf.records import OperCode
from wechat_kf.testing import (  # noqa: F401  (importing them registers the routes)
    _kf_routes,
    _media_routes,
    _message_routes,
    _records_routes,
    _session_routes,
    _token_routes,
)
from wechat_kf.testing._clock import VirtualClock
from wechat_kf.testing._core import FakeClock, FakeReply, Fault, RecordedRequest
from wechat_kf.testing._customer_service import CustomerService
from wechat_kf.testing._fake import FakeWeChat, IssuedToken
from wechat_kf.testing._media import FakeMedia, MediaLibrary, sample_media
from wechat_kf.testing._server import FakeServer
from wechat_kf.testing._state import (
    FakeAgent,
    FakePush,
    FakeRecord,
    FakeSession,
    FakeUser,
    FakeWaitCase,
    ServiceWindow,
)
from wechat_kf.testing._transport import FakeTransport

__all__ = [
    "CustomerService",
    "FakeAgent",
    "FakeClock",
    "FakeMedia",
    "FakePush",
    "FakeRecord",
    "FakeReply",
    "FakeServer",
    "FakeSession",
    "FakeTransport",
    "FakeUser",
    "FakeWaitCase",
    "FakeWeChat",
    "Fault",
    "IssuedToken",
    "MediaLibrary",
    "RecordedRequest",
    "ServiceWindow",
    "VirtualClock",
    "sample_media",
]

#: Old names, kept for a while: ``Opercode`` is :class:`wechat_kf.OperCode` (one vocabulary for
#: the SDK and the fake), ``Reply`` is :class:`FakeReply` (``wechat_kf.callback.Reply`` is the
#: answer to a push).
_RENAMED = {
    "Opercode": (
        OperCode,
        "wechat_kf.testing.Opercode is deprecated: use wechat_kf.OperCode (QUEUED is "
        "SESSION_CREATED_UNACCEPTED, ACCEPTED SESSION_ACCEPTED, AGENT_CREATED "
        "SESSION_STARTED_BY_AGENT, TRANSFERRED SESSION_TRANSFERRED, CLOSED SESSION_CLOSED, "
        "GRABBED SESSION_GRABBED, USER_MESSAGE ACCOUNT_RECEIVED_MESSAGE, AGENT_SENT "
        "AGENT_SENT_MESSAGE, AGENT_RECEIVED AGENT_RECEIVED_MESSAGE)",
    ),
    "Reply": (FakeReply, "wechat_kf.testing.Reply is deprecated: use wechat_kf.testing.FakeReply"),
}


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        value, message = _RENAMED[name]
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
