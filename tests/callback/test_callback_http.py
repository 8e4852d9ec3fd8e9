"""Real HTTP on loopback: aiohttp's server, Starlette and FastAPI under uvicorn; httpx client.

The full loop (URL check → user message in → transfer reply out → kf_create_session in), a
retry of a slow push, compatibility mode, refusals. Servers bind 127.0.0.1 on a free port and
are stopped by each test (asyncio only), with the integrations' defaults unless a test says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.callback.callback_fakes import APPID, KEY, NOW, TOKEN, FakeWeChat, event_push, text_push
from tests.callback.uvicorn_server import uvicorn_serving
from wechat_kf.callback import (
    CallbackHandler,
    DuplicateEntry,
    Incoming,
    KfCreateSession,
    MemoryDuplicateStore,
    Reply,
    TextMessage,
    TextReply,
    TransferCustomerService,
)
from wechat_kf.callback._xml import parse_fields

pytestmark = pytest.mark.anyio

Endpoint = Callable[..., Any]
Server = Callable[..., AbstractAsyncContextManager[str]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiohttp and uvicorn run on asyncio only


@asynccontextmanager
async def serve_aiohttp(
    handler: CallbackHandler, on_message: Any, **options: Any
) -> AsyncIterator[str]:
    from aiohttp import web

    from wechat_kf.callback.aiohttp import callback_endpoint

    app = web.Application()
    app.router.add_route("*", "/wechat", callback_endpoint(handler, on_message, **options))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/wechat"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serve_starlette(
    handler: CallbackHandler, on_message: Any, **options: Any
) -> AsyncIterator[str]:
    from starlette.applications import Starlette
    from starlette.routing import Route

    from wechat_kf.callback.starlette import callback_endpoint

    endpoint = callback_endpoint(handler, on_message, **options)
    app = Starlette(routes=[Route("/wechat", endpoint, methods=["GET", "POST"])])
    async with uvicorn_serving(app) as url:
        yield url


@asynccontextmanager
async def serve_fastapi(
    handler: CallbackHandler, on_message: Any, **options: Any
) -> AsyncIterator[str]:
    fastapi = pytest.importorskip("fastapi")
    from wechat_kf.callback.starlette import callback_endpoint

    app = fastapi.FastAPI()
    endpoint = callback_endpoint(handler, on_message, **options)
    app.add_route("/wechat", endpoint, methods=["GET", "POST"])
    async with uvicorn_serving(app) as url:
        yield url


SERVERS = {"aiohttp": serve_aiohttp, "starlette": serve_starlette, "fastapi": serve_fastapi}


@pytest.fixture(params=list(SERVERS))
def serve(request: pytest.FixtureRequest) -> Server:
    return SERVERS[request.param]


class Agent:
    """The developer's code: hand text to customer service, acknowledge everything else."""

    def __init__(self) -> None:
        self.seen: list[Incoming] = []

    async def __call__(self, incoming: Incoming) -> Reply | None:
        self.seen.append(incoming)
        if isinstance(incoming, TextMessage) and incoming.content == "help":
            return TextReply(content="帮助 <menu>")
        if isinstance(incoming, TextMessage):
            return TransferCustomerService(kf_account="kf2001@support")
        return None


async def post(
    client: httpx.AsyncClient, url: str, request: tuple[dict[str, str], bytes]
) -> httpx.Response:
    query, body = request
    return await client.post(url, params=query, content=body, headers={"Content-Type": "text/xml"})


@pytest.mark.parametrize("key", [KEY, None], ids=["aes", "plain"])
async def test_full_loop(serve: Server, key: str | None) -> None:
    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=key, clock=lambda: NOW)
    agent = Agent()
    fake = FakeWeChat(encoding_aes_key=key, timestamp=str(NOW))
    async with serve(handler, agent) as url, httpx.AsyncClient(timeout=5) as client:
        # 1. URL check
        response = await client.get(url, params=fake.url_check("echo-1"))
        assert (response.status_code, response.content) == (200, b"echo-1")
        assert response.headers["content-type"] == "text/plain; charset=utf-8"

        # 2. the user writes: transfer to customer service
        message = fake.push(text_push("我要人工客服", msg_id=101))
        response = await post(client, url, message)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/xml; charset=utf-8"
        reply = fake.open_reply(response.content) if key else response.content
        fields = parse_fields(reply)
        assert fields["MsgType"] == "transfer_customer_service"
        assert fields["TransInfo/KfAccount"] == "kf2001@support"
        assert (fields["ToUserName"], fields["FromUserName"]) == (
            "oUser_openid_0000000000001",
            "gh_account0001",
        )
        assert fields["CreateTime"] == str(NOW)

        # 3. WeChat retries the same push (the default deduplicator): the same answer, byte
        # for byte, and on_message is not called again
        retry = await post(client, url, message)
        assert (retry.status_code, retry.content) == (200, response.content)
        assert retry.headers["content-type"] == "application/xml; charset=utf-8"

        # 4. an agent takes the session
        response = await post(
            client, url, fake.push(event_push("kf_create_session", KfAccount="kf2001@support"))
        )
        assert (response.status_code, response.content) == (200, b"success")

        # 5. a text reply, with characters that need care in XML
        response = await post(client, url, fake.push(text_push("help", msg_id=102)))
        reply = fake.open_reply(response.content) if key else response.content
        assert parse_fields(reply)["Content"] == "帮助 <menu>"

        # 6. a push replayed a month later: refused by the default freshness window
        stale = FakeWeChat(encoding_aes_key=key, timestamp=str(NOW - 30 * 86400))
        response = await post(client, url, stale.push(text_push("again", msg_id=103)))
        assert (response.status_code, response.content) == (403, b"forbidden")

    assert [type(m) for m in agent.seen] == [TextMessage, KfCreateSession, TextMessage]
    assert all(m.encrypted is (key is not None) for m in agent.seen)
    created = agent.seen[1]
    assert isinstance(created, KfCreateSession)
    assert created.kf_account == "kf2001@support"


async def test_refusals_over_http(serve: Server) -> None:
    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY, max_body_size=8192)
    agent = Agent()
    fake = FakeWeChat(encoding_aes_key=KEY)
    async with serve(handler, agent) as url, httpx.AsyncClient(timeout=5) as client:
        forged = FakeWeChat(token="forgedToken", encoding_aes_key=KEY)
        response = await post(client, url, forged.push(text_push()))
        assert (response.status_code, response.content) == (403, b"forbidden")

        response = await client.get(url, params=forged.url_check())
        assert response.status_code == 403

        query, _ = fake.push(text_push())
        response = await client.post(url, params=query, content=b"<xml>" + b" " * 1_000_000)
        assert response.status_code == 413

        # 60,000 empty elements around a forged <Encrypt>: refused unparsed, by the signature
        hostile = b"<xml>" + b"<a/>" * 60_000 + b"<Encrypt>QUJD</Encrypt></xml>"
        response = await post(client, url, (query, hostile[:8000]))
        assert (response.status_code, response.content) == (400, b"bad request")
        response = await post(client, url, (query, hostile[-8000:]))
        assert (response.status_code, response.content) == (403, b"forbidden")

        response = await client.put(url, params=query, content=b"")
        assert response.status_code == 405

        # a captured query downgraded to plain mode, carrying a forged plaintext body
        downgraded = {k: v for k, v in query.items() if k not in ("encrypt_type", "msg_signature")}
        response = await post(client, url, (downgraded, text_push("forged")))
        assert (response.status_code, response.content) == (403, b"forbidden")
    assert agent.seen == []


@pytest.mark.parametrize("key", [None, KEY], ids=["plain-mode-handler", "safe-mode-handler"])
async def test_compatibility_mode_over_http(serve: Server, key: str | None) -> None:
    # The admin console flipped to compatibility mode (兼容模式): plaintext and <Encrypt>
    # together. A handler without the key reads the plaintext, one with the key decrypts.
    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=key)
    agent = Agent()
    fake = FakeWeChat(encoding_aes_key=KEY)
    async with serve(handler, agent) as url, httpx.AsyncClient(timeout=5) as client:
        response = await post(
            client, url, fake.push(text_push("help", msg_id=401), compatible=True)
        )
        assert response.status_code == 200
        reply = fake.open_reply(response.content) if key else response.content
        assert parse_fields(reply)["Content"] == "帮助 <menu>"
        # the plain signature is checked: a forged one is refused
        query, body = fake.push(text_push("help", msg_id=402), compatible=True)
        response = await post(client, url, ({**query, "signature": "0" * 40}, body))
        if key is None:
            assert response.status_code == 403
        else:  # the safe-mode handler checks msg_signature, which is intact
            assert response.status_code == 200
    message = agent.seen[0]
    assert isinstance(message, TextMessage)
    assert (message.content, message.msg_id, message.encrypted) == ("help", 401, key is not None)
    assert "Encrypt" not in message.raw


class SlowAgent:
    """on_message whose first call blocks until released (longer than WeChat's 5 s)."""

    def __init__(self) -> None:
        self.calls: list[Incoming] = []
        self.entered = anyio.Event()
        self.release = anyio.Event()

    async def __call__(self, incoming: Incoming) -> Reply | None:
        self.calls.append(incoming)
        if len(self.calls) == 1:
            self.entered.set()
            await self.release.wait()
        return TransferCustomerService(kf_account="kf2001@support")


class WatchedStore(MemoryDuplicateStore):
    """The default memory store, counting the claims that reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.claims = 0

    async def claim(self, key: str, ttl: float) -> DuplicateEntry | None:
        self.claims += 1
        return await super().claim(key, ttl)


@pytest.mark.parametrize("key", [KEY, None], ids=["aes", "plain"])
async def test_a_retry_of_a_slow_push_gets_the_same_reply_over_http(
    serve: Server, key: str | None
) -> None:
    # WeChat gave up on the first try after 5 s and retried: the retry waits for the first
    # try (no 503) and answers its reply, byte for byte; on_message runs once.
    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=key)
    slow, store = SlowAgent(), WatchedStore()
    message = FakeWeChat(encoding_aes_key=key).push(text_push(msg_id=301))
    responses: list[httpx.Response] = []

    async def one_try(client: httpx.AsyncClient, url: str) -> None:
        responses.append(await post(client, url, message))

    async with serve(handler, slow, deduplicator=store) as url:
        async with httpx.AsyncClient(timeout=5) as client, anyio.create_task_group() as group:
            group.start_soon(one_try, client, url)
            await slow.entered.wait()
            group.start_soon(one_try, client, url)  # the retry, on its own connection
            while store.claims < 2:  # noqa: ASYNC110 - the server runs in this loop
                await anyio.sleep(0.005)
            assert responses == []  # waiting, not refused
            slow.release.set()
        first, retry = responses
        assert first.status_code == retry.status_code == 200
        assert retry.content == first.content
        assert retry.headers["content-type"] == "application/xml; charset=utf-8"
        async with httpx.AsyncClient(timeout=5) as client:  # a third try, after the fact
            late = await post(client, url, message)
        assert late.content == first.content
    assert len(slow.calls) == 1


async def test_a_push_still_running_after_the_retrys_wait_is_503_over_http(serve: Server) -> None:
    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY)
    slow = SlowAgent()
    message = FakeWeChat(encoding_aes_key=KEY).push(text_push(msg_id=302))
    async with serve(handler, slow, retry_wait=0.05) as url, httpx.AsyncClient(timeout=5) as client:
        async with anyio.create_task_group() as group:
            group.start_soon(post, client, url, message)
            await slow.entered.wait()
            response = await post(client, url, message)
            assert response.status_code == 503  # not success: WeChat tries again
            assert response.headers["retry-after"] == "5"
            slow.release.set()
        response = await post(client, url, message)
        assert response.status_code == 200
        assert b"<Encrypt>" in response.content  # the first try's reply, not success
    assert len(slow.calls) == 1


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a", "b", "signature", "%41", "+", "=", "&", "%zz", "é", "", "1"]),
        max_size=12,
    ).map("".join)
)
def test_the_starlette_query_is_read_as_starlette_reads_it(text: str) -> None:
    from starlette.datastructures import QueryParams

    from wechat_kf.callback.starlette import _query

    raw = text.encode("utf-8")
    assert _query(raw) == dict(QueryParams(raw))
