"""A web service with many workers: each builds its store and client at startup.

    gunicorn tokens_workers:app -k uvicorn.workers.UvicornWorker -w 8
    uvicorn tokens_workers:app --workers 8

Never at import time in a `--preload`ed master: connections must not cross a fork(). Run as a
script, it starts the app once in-process and asks it for the agents.
"""

import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wechat_kf import AsyncWeChat, RedisTokenStore


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    store = RedisTokenStore.from_url(os.environ["REDIS_URL"], prefix="shop:wechat:")
    async with (
        store,
        AsyncWeChat(
            os.environ["WECHAT_APPID"],
            os.environ["WECHAT_SECRET"],
            base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
            token_store=store,
        ) as wx,
    ):
        app.state.wx = wx  # one client per worker; one token for all the workers
        yield


async def agents(request: Request) -> JSONResponse:
    accounts = await request.app.state.wx.kf.list()
    return JSONResponse([account.kf_account for account in accounts])


app = Starlette(routes=[Route("/agents", agents)], lifespan=lifespan)

if __name__ == "__main__":
    from starlette.testclient import TestClient

    with TestClient(app) as client:  # runs the lifespan, as a worker does
        print(client.get("/agents").json())
# Output:
# ['alice@gh_demo', 'bob@gh_demo', 'carol@gh_demo']
