"""Fixtures for the fake server's own tests: a frozen clock and raw HTTP with a valid token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.testing.fake_http import T0, FrozenClock, RawAPI
from wechat_kf.testing import FakeWeChat


@pytest.fixture
def wechat() -> FakeWeChat:
    """A fresh fake whose clock stands still at ``T0`` until advanced (``fake`` runs on time)."""
    return FakeWeChat(clock=FrozenClock(T0))


@pytest.fixture
async def api(wechat: FakeWeChat) -> AsyncIterator[RawAPI]:
    """Raw in-process HTTP to ``wechat``, each call with a valid token."""
    async with httpx.AsyncClient(
        transport=wechat.transport(), base_url="https://api.weixin.qq.com"
    ) as client:
        yield RawAPI(client, wechat)
