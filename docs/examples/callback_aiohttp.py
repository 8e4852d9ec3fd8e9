"""Receive pushes in an aiohttp server (real HTTP on a loopback port here)."""

import asyncio
import hashlib
import time

import httpx
from aiohttp import web

from wechat_kf.callback import (
    CallbackHandler,
    Incoming,
    Reply,
    TextMessage,
    TextReply,
)
from wechat_kf.callback.aiohttp import callback_endpoint

TOKEN = "my_token"
handler = CallbackHandler(token=TOKEN, appid="wx1234567890abcdef")


async def on_message(incoming: Incoming) -> Reply | None:
    if isinstance(incoming, TextMessage):
        return TextReply(content=f"收到：{incoming.content}")
    return None


app = web.Application()
endpoint = callback_endpoint(handler, on_message)  # deduplicates WeChat's retries, in memory
app.router.add_route("*", "/wechat", endpoint)
# Serve it: web.run_app(app, port=8080)


def signed() -> dict[str, str]:  # what WeChat does: sign the query with the same token
    timestamp, nonce = str(int(time.time())), "1320562132"
    signature = hashlib.sha1("".join(sorted([TOKEN, timestamp, nonce])).encode()).hexdigest()
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce}


async def main() -> None:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()  # port 0: any free one
    host, port = runner.addresses[0][:2]
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as wechat:
            body = (
                "<xml><ToUserName>gh_demo</ToUserName><FromUserName>o_customer_002</FromUserName>"
                "<CreateTime>1700000000</CreateTime><MsgType>text</MsgType>"
                "<Content>能开发票吗？</Content><MsgId>2</MsgId></xml>"
            ).encode()
            answer = await wechat.post("/wechat", params=signed(), content=body)
            print(answer.status_code, "收到：能开发票吗？" in answer.text)
            refused = await wechat.post("/wechat", params={"signature": "forged"}, content=body)
            print(refused.status_code, refused.text)
    finally:
        await runner.cleanup()


asyncio.run(main())
# Output:
# 200 True
# 403 forbidden
