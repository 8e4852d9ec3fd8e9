"""The callback endpoint feeds the client's service-window ledger (``windows=wx.windows``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.callback.callback_fakes import (
    APPID,
    KEY,
    NOW,
    OPENID,
    TOKEN,
    FakeWeChat,
    event_push,
    text_push,
)
from tests.testing.fake_http import FrozenClock
from wechat_kf import AsyncWeChat, MemoryWindowStore, Text, WindowStoreError
from wechat_kf.callback import CallbackEndpoint, CallbackHandler, Deduplicator, Incoming
from wechat_kf.testing import FakeWeChat as FakeAPI

pytestmark = pytest.mark.anyio


@pytest.fixture
def api() -> FakeAPI:
    return FakeAPI(appid=APPID, clock=FrozenClock(NOW))


@pytest.fixture
async def wx(api: FakeAPI) -> AsyncIterator[AsyncWeChat]:
    async with api.client() as client:
        yield client


class Handler:
    """on_message: records what it saw and what the ledger said at that moment."""

    def __init__(self, wx: AsyncWeChat, fail: bool = False) -> None:
        self.wx = wx
        self.fail = fail
        self.left: list[int | None] = []

    async def __call__(self, incoming: Incoming) -> None:
        self.left.append((await self.wx.windows.get(incoming.from_user)).messages_left)
        if self.fail:
            raise RuntimeError("handler bug")


def endpoint(wx: AsyncWeChat, on_message: Handler, *, key: str | None = None) -> CallbackEndpoint:
    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=key)
    return CallbackEndpoint(handler, on_message, deduplicator=Deduplicator(), windows=wx.windows)


async def test_a_user_message_is_in_the_ledger_before_on_message_runs(wx: AsyncWeChat) -> None:
    pushes = FakeWeChat(encoding_aes_key=KEY)
    on_message = Handler(wx)
    answer = await endpoint(wx, on_message, key=KEY).answer("POST", *pushes.push(text_push()))
    assert answer.status == 200
    assert on_message.left == [5]
    status = await wx.windows.get(OPENID)
    assert status.windows[0].opened_at.timestamp() == NOW


@pytest.mark.parametrize(
    ("push", "left"),
    [
        (event_push("CLICK", EventKey="BUY"), 3),
        (event_push("scancode_waitmsg", EventKey="SCAN1"), 3),
        (event_push("subscribe", EventKey="qrscene_7"), 3),
        (event_push("SCAN", EventKey="7"), 3),
        (text_push("yes", bizmsgmenuid="101"), 3),  # a msgmenu click: a menu click
        (event_push("VIEW", EventKey="https://example.com"), None),
        (event_push("kf_create_session", KfAccount="a@gh"), None),
        (event_push("unsubscribe"), None),
    ],
)
async def test_only_the_qualifying_pushes_open_a_window(
    wx: AsyncWeChat, push: bytes, left: int | None
) -> None:
    on_message = Handler(wx)
    answer = await endpoint(wx, on_message).answer("POST", *FakeWeChat().push(push))
    assert answer.status == 200
    assert on_message.left == [left]


async def test_a_retry_after_a_failed_handler_does_not_renew_the_window(
    wx: AsyncWeChat, api: FakeAPI
) -> None:
    """on_message sent a message, then failed: WeChat's retry is processed again, but the
    window it already opened is not reopened (the send stays counted)."""
    api.user_says(OPENID)  # the fake's side of the same message
    request = FakeWeChat().push(text_push())
    failing = Handler(wx, fail=True)
    with pytest.raises(RuntimeError):
        await endpoint(wx, failing).answer("POST", *request)
    await wx.message.send(OPENID, Text(content="on it"))
    on_message = Handler(wx)
    point = endpoint(wx, on_message)
    assert (await point.answer("POST", *request)).status == 200
    assert on_message.left == [4]


async def test_a_failing_ledger_never_refuses_a_push(
    api: FakeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(MemoryWindowStore):
        async def open(self, *args: Any, **kwargs: Any) -> bool:
            raise WindowStoreError("Redis window open for wx failed: ConnectionError: refused")

    async with api.client(window_store=Broken()) as wx:
        on_message = Handler(wx)
        with caplog.at_level(logging.WARNING, logger="wechat_kf.callback"):
            answer = await endpoint(wx, on_message).answer("POST", *FakeWeChat().push(text_push()))
    assert answer.status == 200
    assert on_message.left == [None]
    assert "window ledger: could not record a TextMessage push" in caplog.text


async def test_without_windows_nothing_is_recorded(wx: AsyncWeChat) -> None:
    handler = CallbackHandler(token=TOKEN, appid=APPID)
    on_message = Handler(wx)
    point = CallbackEndpoint(handler, on_message)
    assert (await point.answer("POST", *FakeWeChat().push(text_push()))).status == 200
    assert on_message.left == [None]
