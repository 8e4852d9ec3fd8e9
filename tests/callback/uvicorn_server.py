"""A real uvicorn server for an ASGI app on a free loopback port, stopped on exit (asyncio)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio


@asynccontextmanager
async def uvicorn_serving(
    app: Any, *, lifespan: Literal["on", "off"] = "off"
) -> AsyncIterator[str]:
    """Serve ``app``; yield its ``/wechat`` URL. With ``lifespan="on"`` the app's lifespan runs
    (startup before the first request, shutdown when the server stops)."""
    import uvicorn

    # IPPROTO_TCP: asyncio sets TCP_NODELAY only when the proto says TCP (else each answer
    # waits ~40 ms for a delayed ACK)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="error", lifespan=lifespan, ws="none", http="h11", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        with anyio.fail_after(5):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no startup event
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}/wechat"
    finally:
        server.should_exit = True
        with anyio.fail_after(10):
            await task
        sock.close()
