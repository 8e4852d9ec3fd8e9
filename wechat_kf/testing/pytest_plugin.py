"""pytest fixtures for the fake WeChat API.

Enable in your ``conftest.py``::

    pytest_plugins = ["wechat_kf.testing.pytest_plugin"]

``fake_wechat`` is a fresh :class:`~wechat_kf.testing.FakeWeChat` per test;
``fake_wechat_server`` serves it on a loopback port for the duration of the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wechat_kf.testing import FakeServer, FakeWeChat


@pytest.fixture
def fake_wechat() -> FakeWeChat:
    """A fresh fake WeChat API (in-process until served)."""
    return FakeWeChat()


@pytest.fixture
def fake_wechat_server(fake_wechat: FakeWeChat) -> Iterator[FakeServer]:
    """``fake_wechat`` on a real loopback port; ``.base_url`` is where to point the client."""
    with fake_wechat.serve() as server:
        yield server
