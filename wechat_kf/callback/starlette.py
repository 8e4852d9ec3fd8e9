"""Serve WeChat callbacks from Starlette or FastAPI.

::

    from starlette.applications import Starlette
    from starlette.routing import Route
    from wechat_kf.callback.starlette import callback_endpoint

    endpoint = callback_endpoint(handler, on_message)
    app = Starlette(routes=[Route("/wechat", endpoint, methods=["GET", "POST"])])

With FastAPI: ``app.add_route("/wechat", endpoint, methods=["GET", "POST"])``.

A bot whose answers may take longer than WeChat's 5 seconds: build the
:class:`~wechat_kf.callback.CallbackEndpoint` with your ``AsyncWeChat`` and open its task group
in the application's lifespan::

    wx = AsyncWeChat(appid, secret)
    bot = CallbackEndpoint(handler, on_message, wechat=wx)

    @asynccontextmanager
    async def lifespan(app):
        async with wx, bot.running():  # late answers run here; shutdown waits, then reports
            yield

    app = FastAPI(lifespan=lifespan)
    app.add_route("/wechat", callback_endpoint(bot), methods=["GET", "POST"])

Importing this module imports Starlette; :mod:`wechat_kf.callback` itself does not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import overload
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from wechat_kf.callback._dedupe import Deduplicator, DuplicateStore
from wechat_kf.callback._defaults import RETRY_WAIT
from wechat_kf.callback._endpoint import CallbackEndpoint, OnMessage, endpoint_of
from wechat_kf.callback._handler import CallbackHandler

__all__ = ["StarletteEndpoint", "callback_endpoint"]


def _query(query_string: bytes) -> dict[str, str]:
    """The query as ``request.query_params`` reads it (last value wins), minus its cost.

    WeChat's query (signature, timestamp, nonce, openid, ...) is never percent-encoded: split
    it directly; anything encoded goes through ``parse_qsl``, as Starlette does.
    """
    text = query_string.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    query: dict[str, str] = {}
    for part in text.split("&"):
        if part:
            name, _, value = part.partition("=")
            query[name] = value
    return query


StarletteEndpoint = Callable[[Request], Awaitable[Response]]


@overload
def callback_endpoint(handler: CallbackEndpoint, /) -> StarletteEndpoint: ...


@overload
def callback_endpoint(
    handler: CallbackHandler,
    on_message: OnMessage,
    *,
    deduplicator: Deduplicator | DuplicateStore | None = None,
    retry_wait: float = RETRY_WAIT,
) -> StarletteEndpoint: ...


def callback_endpoint(
    handler: CallbackHandler | CallbackEndpoint,
    on_message: OnMessage | None = None,
    *,
    deduplicator: Deduplicator | DuplicateStore | None = None,
    retry_wait: float = RETRY_WAIT,
) -> StarletteEndpoint:
    """Return a Starlette endpoint answering WeChat's GET (URL check) and POST (pushes).

    Give a :class:`~wechat_kf.callback.CallbackEndpoint` (for a bot: built with ``wechat=``,
    its :meth:`~wechat_kf.callback.CallbackEndpoint.running` entered in the app's lifespan), or
    the handler and ``on_message`` to build a passive one. The body is read in chunks and
    refused with 413 past ``handler.max_body_size``. Every push is deduplicated and its
    retries get its first answer: in memory by default (one process), or shared between worker
    processes with ``deduplicator=RedisDuplicateStore(client)``.
    """
    endpoint = endpoint_of(handler, on_message, deduplicator=deduplicator, retry_wait=retry_wait)

    async def wechat_callback(request: Request) -> Response:
        body = request.stream() if request.method == "POST" else b""
        answer = await endpoint.answer(request.method, _query(request.scope["query_string"]), body)
        return Response(answer.body, status_code=answer.status, headers=answer.headers)

    return wechat_callback
