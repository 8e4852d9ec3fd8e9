"""Serve WeChat callbacks from an aiohttp server.

::

    from aiohttp import web
    from wechat_kf.callback.aiohttp import callback_endpoint

    app = web.Application()
    app.router.add_route("*", "/wechat", callback_endpoint(handler, on_message))

A bot whose answers may take longer than WeChat's 5 seconds: build the
:class:`~wechat_kf.callback.CallbackEndpoint` with your ``AsyncWeChat`` and open its task group
for the application's life (``cleanup_ctx`` enters it at startup and leaves it at cleanup, in
the same task, as ``web.run_app`` does)::

    wx = AsyncWeChat(appid, secret)
    bot = CallbackEndpoint(handler, on_message, wechat=wx)

    async def bot_running(app):
        async with wx, bot.running():  # late answers run here; cleanup waits, then reports
            yield

    app.cleanup_ctx.append(bot_running)
    app.router.add_route("*", "/wechat", callback_endpoint(bot))

Importing this module imports aiohttp; :mod:`wechat_kf.callback` itself does not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import overload

from aiohttp import web

from wechat_kf.callback._dedupe import Deduplicator, DuplicateStore
from wechat_kf.callback._defaults import READ_CHUNK_SIZE, RETRY_WAIT
from wechat_kf.callback._endpoint import CallbackEndpoint, OnMessage, endpoint_of
from wechat_kf.callback._handler import CallbackHandler

__all__ = ["AiohttpHandler", "callback_endpoint"]


AiohttpHandler = Callable[[web.Request], Awaitable[web.Response]]


@overload
def callback_endpoint(handler: CallbackEndpoint, /) -> AiohttpHandler: ...


@overload
def callback_endpoint(
    handler: CallbackHandler,
    on_message: OnMessage,
    *,
    deduplicator: Deduplicator | DuplicateStore | None = None,
    retry_wait: float = RETRY_WAIT,
) -> AiohttpHandler: ...


def callback_endpoint(
    handler: CallbackHandler | CallbackEndpoint,
    on_message: OnMessage | None = None,
    *,
    deduplicator: Deduplicator | DuplicateStore | None = None,
    retry_wait: float = RETRY_WAIT,
) -> AiohttpHandler:
    """Return an aiohttp handler answering WeChat's GET (URL check) and POST (pushes).

    Give a :class:`~wechat_kf.callback.CallbackEndpoint` (for a bot: built with ``wechat=``,
    its :meth:`~wechat_kf.callback.CallbackEndpoint.running` entered in ``cleanup_ctx``), or
    the handler and ``on_message`` to build a passive one. Route it for ``"*"`` (other methods
    answer 405) or for GET and POST. The body is read in chunks and refused with 413 past
    ``handler.max_body_size``. Every push is deduplicated and its retries get its first
    answer: in memory by default (one process), or shared between worker processes with
    ``deduplicator=RedisDuplicateStore(client)``.
    """
    endpoint = endpoint_of(handler, on_message, deduplicator=deduplicator, retry_wait=retry_wait)

    async def wechat_callback(request: web.Request) -> web.Response:
        if request.method == "POST":
            body = request.content.iter_chunked(READ_CHUNK_SIZE)
            answer = await endpoint.answer(request.method, request.query, body)
        else:
            answer = await endpoint.answer(request.method, request.query, b"")
        return web.Response(body=answer.body, status=answer.status, headers=answer.headers)

    return wechat_callback
