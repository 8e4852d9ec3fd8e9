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

Script failures with ``fake.inject(path, errcode=45015)`` (or ``status=503``, ``delay=2``,
``reset=True``, ``malformed=b"<html>"``), move time with ``fake.clock.advance(7200)``, and assert
on ``fake.requests``. With pytest, add ``pytest_plugins = ["wechat_kf.testing.pytest_plugin"]`` to
your ``conftest.py`` for the ``fake_wechat`` and ``fake_wechat_server`` fixtures.
"""

from wechat_kf.testing import _token_routes  # noqa: F401  (registers the routes)
from wechat_kf.testing._core import FakeClock, Fault, RecordedRequest, Reply
from wechat_kf.testing._fake import FakeWeChat, IssuedToken
from wechat_kf.testing._server import FakeServer
from wechat_kf.testing._transport import FakeTransport

__all__ = [
    "FakeClock",
    "FakeServer",
    "FakeTransport",
    "FakeWeChat",
    "Fault",
    "IssuedToken",
    "RecordedRequest",
    "Reply",
]
