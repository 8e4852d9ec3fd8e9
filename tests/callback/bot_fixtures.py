"""A bot under test: a CallbackEndpoint with wechat=, on a VirtualClock, against the fake WeChat.

The pushes come from ``callback_fakes.FakeWeChat`` (WeChat's push side, signed as WeChat
signs); the late answers go to ``wechat_kf.testing.FakeWeChat`` (the API), whose clock the
virtual clock moves, so that an 8-second answer runs in no time and the fake's window and
"typing..." rules see the same seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs

from tests.callback.callback_fakes import APPID, OPENID, TOKEN, text_push
from tests.callback.callback_fakes import FakeWeChat as PushSide
from wechat_kf import AsyncWeChat
from wechat_kf.callback import CallbackEndpoint, CallbackHandler, DeliveryFailure, HTTPAnswer
from wechat_kf.testing import FakeWeChat, VirtualClock

SEND = "/cgi-bin/message/custom/send"
TYPING = "/cgi-bin/message/custom/typing"


@attrs.define
class Bot:
    """The endpoint, its clock, the fake API and what the failure hook was told."""

    api: FakeWeChat
    wx: AsyncWeChat
    clock: VirtualClock
    endpoint: CallbackEndpoint
    failures: list[DeliveryFailure]
    pushes: PushSide = attrs.Factory(PushSide)
    stop: anyio.Event = attrs.Factory(anyio.Event)
    stopped: anyio.Event = attrs.Factory(anyio.Event)

    def push(self, content: str = "你好", msg_id: int = 1001) -> tuple[dict[str, str], bytes]:
        """A signed push of a user's text message."""
        return self.pushes.push(text_push(content, msg_id=msg_id))

    async def post(self, request: tuple[dict[str, str], bytes]) -> HTTPAnswer:
        return await self.endpoint.answer("POST", *request)

    def texts(self, openid: str = OPENID) -> list[str]:
        """The text messages the fake delivered to the user, in order."""
        return [body["text"]["content"] for body in self.api.sent_to(openid) if "text" in body]

    def calls(self) -> list[tuple[str, Any]]:
        """The sends and typing commands that reached the fake, in order, with what they said."""
        calls: list[tuple[str, Any]] = []
        for request in self.api.requests:
            if request.path == TYPING:
                calls.append(("typing", request.json()["command"]))
            elif request.path == SEND:
                body = request.json()
                calls.append(("send", body.get("text", {}).get("content", body["msgtype"])))
        return calls

    async def lifespan(self) -> None:
        """What the application's lifespan does: the endpoint runs until ``stop``."""
        try:
            async with self.endpoint.running():
                await self.stop.wait()
        finally:
            self.stopped.set()


@asynccontextmanager
async def running_bot(
    on_message: Callable[..., Any], *, window: bool = True, **options: Any
) -> AsyncIterator[Bot]:
    """A bot whose lifespan runs in a task; the user wrote (``window``) just now.

    Leaving the block shuts the bot down, moving the clock through any grace period; a test
    of the shutdown sets ``bot.stop`` itself and moves the clock.
    """
    api = FakeWeChat()
    if window:
        api.user_says(OPENID, "你好")
    clock = VirtualClock(follow=api.clock)
    failures: list[DeliveryFailure] = []
    handler = CallbackHandler(token=TOKEN, appid=APPID)
    async with api.client(sleep=_no_sleep) as wx, anyio.create_task_group() as group:
        options.setdefault("on_delivery_failed", failures.append)
        endpoint = CallbackEndpoint(handler, on_message, wechat=wx, clock=clock, **options)
        bot = Bot(api=api, wx=wx, clock=clock, endpoint=endpoint, failures=failures)
        group.start_soon(bot.lifespan)
        while not endpoint.delivery.accepting:  # type: ignore[union-attr]
            await anyio.lowlevel.checkpoint()
        yield bot
        bot.stop.set()
        while not bot.stopped.is_set():
            with anyio.move_on_after(0.05):
                await bot.stopped.wait()
            if clock.sleepers:
                clock.advance_to_next()


async def _no_sleep(_seconds: float) -> None:
    await anyio.lowlevel.checkpoint()
