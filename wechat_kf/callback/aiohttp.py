"""Serve WeChat callbacks from an aiohttp server.

::

    from aiohttp import web
    from wechat_kf.callback.aiohttp import callback_endpoint

    app = web.Application()
    app.router.add_route("*", "/wechat", callback_endpoint(handler, on_message))

Importing this module imports aiohttp; :mod:`wechat_kf.callback` itself does not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from wechat_kf.callback._dedupe import Deduplicator, DuplicateStore
from wechat_kf.callback._defaults import READ_CHUNK_SIZE, RETRY_WAIT
from wechat_kf.callback._endpoint import CallbackEndpoint, OnMessage
from wechat_kf.callback._handler import CallbackHandler

__all__ = ["callback_endpoint"]


def callback_endpoint(
    handler: CallbackHandler,
    on_message: OnMessage,
    *,
    deduplicator: Deduplicator | DuplicateStore | None = None,
    retry_wait: float = RETRY_WAIT,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Return an aiohttp handler answering WeChat's GET (URL check) and POST (pushes).

    Route it for ``"*"`` (other methods answer 405) or for GET and POST. The body is read in
    chunks and refused with 413 past ``handler.max_body_size``. Every push is deduplicated and
    its retries get its first answer: in memory by default (one process), or shared between
    worker processes with ``deduplicator=RedisDuplicateStore(client)``; see
    :class:`~wechat_kf.callback.CallbackEndpoint` for the rest.
    """
    endpoint = CallbackEndpoint(
        handler, on_message, deduplicator=deduplicator, retry_wait=retry_wait
    )

    async def wechat_callback(request: web.Request) -> web.Response:
        if request.method == "POST":
            body = request.content.iter_chunked(READ_CHUNK_SIZE)
            answer = await endpoint.answer(request.method, request.query, body)
        else:
            answer = await endpoint.answer(request.method, request.query, b"")
        return web.Response(body=answer.body, status=answer.status, headers=answer.headers)

    return wechat_callback
