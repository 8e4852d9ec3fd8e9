"""Bots over real HTTP: uvicorn + Starlette / FastAPI and aiohttp's server on loopback.

The endpoint's task group lives in the application's lifespan (Starlette's ``lifespan``,
aiohttp's ``cleanup_ctx``); the late answers go to the fake WeChat served on its own loopback
port. A VirtualClock (following the fake's clock) stands in for the 8 seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from tests.callback.callback_fakes import APPID, OPENID, TOKEN, text_push
from tests.callback.callback_fakes import FakeWeChat as PushSide
from tests.callback.uvicorn_server import uvicorn_serving
from wechat_kf import AsyncWeChat
from wechat_kf.callback import (
    CallbackEndpoint,
    CallbackHandler,
    DeliveryFailure,
    Incoming,
    TextReply,
)
from wechat_kf.callback._xml import parse_fields
from wechat_kf.testing import FakeServer, FakeWeChat, VirtualClock

pytestmark = pytest.mark.anyio

SEND = "/cgi-bin/message/custom/send"
TYPING = "/cgi-bin/message/custom/typing"
Server = Callable[[CallbackEndpoint, AsyncWeChat], AbstractAsyncContextManager[str]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # uvicorn and aiohttp run on asyncio only


def _lifespan(endpoint: CallbackEndpoint, wx: AsyncWeChat) -> Any:
    @asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        async with wx, endpoint.running():
            yield

    return lifespan


@asynccontextmanager
async def serve_starlette(endpoint: CallbackEndpoint, wx: AsyncWeChat) -> AsyncIterator[str]:
    from starlette.applications import Starlette
    from starlette.routing import Route

    from wechat_kf.callback.starlette import callback_endpoint

    route = Route("/wechat", callback_endpoint(endpoint), methods=["GET", "POST"])
    app = Starlette(routes=[route], lifespan=_lifespan(endpoint, wx))
    async with uvicorn_serving(app, lifespan="on") as url:
        yield url


@asynccontextmanager
async def serve_fastapi(endpoint: CallbackEndpoint, wx: AsyncWeChat) -> AsyncIterator[str]:
    from fastapi import FastAPI

    from wechat_kf.callback.starlette import callback_endpoint

    app = FastAPI(lifespan=_lifespan(endpoint, wx))
    app.add_route("/wechat", callback_endpoint(endpoint), methods=["GET", "POST"])
    async with uvicorn_serving(app, lifespan="on") as url:
        yield url


@asynccontextmanager
async def serve_aiohttp(endpoint: CallbackEndpoint, wx: AsyncWeChat) -> AsyncIterator[str]:
    from aiohttp import web

    from wechat_kf.callback.aiohttp import callback_endpoint

    async def bot_running(_app: web.Application) -> AsyncIterator[None]:
        async with wx, endpoint.running():
            yield

    app = web.Application()
    app.cleanup_ctx.append(bot_running)
    app.router.add_route("*", "/wechat", callback_endpoint(endpoint))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/wechat"
    finally:
        await runner.cleanup()


SERVERS = {"starlette": serve_starlette, "fastapi": serve_fastapi, "aiohttp": serve_aiohttp}


@pytest.fixture(params=list(SERVERS))
def serve(request: pytest.FixtureRequest) -> Server:
    return SERVERS[request.param]


@pytest.fixture
def api() -> Iterator[tuple[FakeWeChat, FakeServer]]:
    fake = FakeWeChat()
    fake.user_says(OPENID, "你好")
    with fake.serve() as server:
        yield fake, server


class Thinker:
    """Thinks ``seconds`` on the clock, then answers; counts its calls."""

    def __init__(self, clock: VirtualClock, seconds: float, answer: object) -> None:
        self.clock, self.seconds, self.answer = clock, seconds, answer
        self.calls = 0

    async def __call__(self, _incoming: Incoming) -> object:
        self.calls += 1
        await self.clock.sleep(self.seconds)
        return self.answer


def bot(
    api: tuple[FakeWeChat, FakeServer], seconds: float, answer: object, **options: Any
) -> tuple[CallbackEndpoint, AsyncWeChat, VirtualClock, Thinker, list[DeliveryFailure]]:
    fake, server = api
    clock = VirtualClock(follow=fake.clock)
    thinker = Thinker(clock, seconds, answer)
    failures: list[DeliveryFailure] = []
    wx = AsyncWeChat(fake.appid, fake.secret, base_url=server.base_url)
    endpoint = CallbackEndpoint(
        CallbackHandler(token=TOKEN, appid=APPID),
        thinker,
        wechat=wx,
        clock=clock,
        on_delivery_failed=failures.append,
        **options,
    )
    return endpoint, wx, clock, thinker, failures


async def post(
    client: httpx.AsyncClient, url: str, request: tuple[dict[str, str], bytes]
) -> httpx.Response:
    query, body = request
    return await client.post(url, params=query, content=body, headers={"Content-Type": "text/xml"})


def calls(fake: FakeWeChat) -> list[tuple[str, str]]:
    seen = []
    for request in fake.requests:
        if request.path == TYPING:
            seen.append(("typing", request.json()["command"]))
        elif request.path == SEND:
            seen.append(("send", request.json()["text"]["content"]))
    return seen


async def test_a_handler_of_a_tenth_of_a_second_replies_passively(
    serve: Server, api: tuple[FakeWeChat, FakeServer]
) -> None:
    endpoint, wx, clock, thinker, failures = bot(api, 0.1, TextReply(content="很快"))
    async with serve(endpoint, wx) as url, httpx.AsyncClient(timeout=10) as client:
        async with anyio.create_task_group() as group:
            responses: list[httpx.Response] = []

            async def first() -> None:
                responses.append(await post(client, url, PushSide().push(text_push(msg_id=1))))

            group.start_soon(first)
            await clock.sleeping(2)  # the handler's 0.1 s and the deadline
            clock.advance(0.1)
        [response] = responses
        assert response.status_code == 200
        assert parse_fields(response.content)["Content"] == "很快"
    assert calls(api[0]) == []
    assert (thinker.calls, failures) == (1, [])


async def test_an_8_second_handler_answers_success_then_sends_after_typing(
    serve: Server, api: tuple[FakeWeChat, FakeServer]
) -> None:
    fake = api[0]
    endpoint, wx, clock, thinker, failures = bot(api, 8.0, "想好了")
    request = PushSide().push(text_push(msg_id=2))
    async with serve(endpoint, wx) as url, httpx.AsyncClient(timeout=10) as client:
        async with anyio.create_task_group() as group:
            responses: list[httpx.Response] = []

            async def first() -> None:
                responses.append(await post(client, url, request))

            group.start_soon(first)
            await clock.sleeping(2)
            assert clock.sleepers[0] == 4.0  # the deadline, from the request's arrival
            clock.advance(4)
        assert (responses[0].status_code, responses[0].content) == (200, b"success")
        await clock.sleeping(2)  # the handler and the typing's renewal
        for _ in range(3):  # WeChat's three retries during the 8 s
            clock.advance(1)
            retry = await post(client, url, request)
            assert (retry.status_code, retry.content) == (200, b"success")
        clock.advance(1)
        await endpoint.wait_idle()
        assert calls(fake) == [("typing", "Typing"), ("send", "想好了")]
    assert (thinker.calls, failures) == (1, [])


async def test_shutdown_with_a_handler_in_flight_reports_it(
    serve: Server, api: tuple[FakeWeChat, FakeServer]
) -> None:
    endpoint, wx, clock, thinker, failures = bot(api, 60.0, "too late", shutdown_grace=0)
    async with serve(endpoint, wx) as url, httpx.AsyncClient(timeout=10) as client:
        async with anyio.create_task_group() as group:
            group.start_soon(post, client, url, PushSide().push(text_push(msg_id=3)))
            await clock.sleeping(2)
            clock.advance(4)
        await clock.sleeping(2)  # the handler thinks, the typing shows: the server stops
    [failure] = failures
    assert (failure.reason, failure.openid) == ("shutdown", OPENID)
    assert calls(api[0]) == [("typing", "Typing"), ("typing", "CancelTyping")]
    assert thinker.calls == 1
