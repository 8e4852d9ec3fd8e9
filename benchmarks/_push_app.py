"""The receiving side's benchmark server: Starlette under uvicorn, in its own process.

Run by ``python -m benchmarks.push`` (``python -m benchmarks._push_app --cpu N``); prints
``PORT <n>`` once it listens. Routes, on one uvicorn server, each its own one-route Starlette
app behind a dispatch by path (so that no route pays for matching the others first):

* ``POST /bare``: bare Starlette answering ``success`` (reads nothing: the strictest baseline);
* ``POST /bare-read``: the same after reading the body, as any real push endpoint must;
* ``GET|POST /wechat``: ``wechat_kf.callback.starlette.callback_endpoint`` in safe mode, an
  ``on_message`` that answers ``None`` (``success``) and counts what it got;
* ``GET /_stats``: ``{"cpu": process CPU seconds, "pushes": pushes on_message got}``.

The token, appid and key are the benchmark's fixed values (:data:`TOKEN`, :data:`APPID`,
:data:`KEY`); the client signs and encrypts with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import time
from typing import Any, Final

TOKEN: Final = "benchToken123"
APPID: Final = "wx0123456789abcdef"
KEY: Final = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"


def app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from wechat_kf.callback import CallbackHandler, Incoming
    from wechat_kf.callback.starlette import callback_endpoint

    pushes = [0]

    async def on_message(incoming: Incoming) -> None:
        pushes[0] += 1

    async def bare(request: Request) -> Response:
        return Response(b"success", media_type="text/plain")

    async def bare_read(request: Request) -> Response:
        await request.body()
        return Response(b"success", media_type="text/plain")

    async def stats(request: Request) -> Response:
        body = json.dumps({"cpu": time.process_time(), "pushes": pushes[0]})
        return Response(body, media_type="application/json")

    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY, timestamp_window=300)
    wechat = callback_endpoint(handler, on_message)
    routes = {
        "/bare": Route("/bare", bare, methods=["POST"]),
        "/bare-read": Route("/bare-read", bare_read, methods=["POST"]),
        "/wechat": Route("/wechat", wechat, methods=["GET", "POST"]),
        "/_stats": Route("/_stats", stats, methods=["GET"]),
    }
    apps = {path: Starlette(routes=[route]) for path, route in routes.items()}

    async def dispatch(scope: Any, receive: Any, send: Any) -> None:
        await apps[scope["path"]](scope, receive, send)

    return dispatch


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    args = parser.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets whose proto says
    # TCP, and without it every response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)  # connections queue until uvicorn serves
    config = uvicorn.Config(app(), log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
