"""Receive pushes in Starlette or FastAPI: one async function answers each new push."""

import asyncio
import hashlib
import time
from xml.etree import ElementTree

import httpx
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Route

from wechat_kf.callback import (
    CallbackHandler,
    Incoming,
    KfCreateSession,
    Reply,
    TextMessage,
    TextReply,
    TransferCustomerService,
)
from wechat_kf.callback.starlette import callback_endpoint

TOKEN = "my_token"
handler = CallbackHandler(token=TOKEN, appid="wx1234567890abcdef")


async def on_message(incoming: Incoming) -> Reply | None:
    if isinstance(incoming, TextMessage):
        if incoming.bizmsgmenuid == "101":  # the user clicked menu item 101
            return TextReply(content="感谢您的反馈！")
        return TransferCustomerService()  # or TransferCustomerService(kf_account="alice@gh_demo")
    if isinstance(incoming, KfCreateSession):
        print(f"{incoming.kf_account} now serves {incoming.from_user}")
    return None  # answers "success"


endpoint = callback_endpoint(handler, on_message)  # deduplicates WeChat's retries, in memory

starlette_app = Starlette(routes=[Route("/wechat", endpoint, methods=["GET", "POST"])])

fastapi_app = FastAPI()
fastapi_app.add_route("/wechat", endpoint, methods=["GET", "POST"])
# Serve either: uvicorn callback_starlette:fastapi_app --port 8000


# What WeChat does: sign the query with the same token, post the XML.
def signed() -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), "1320562132"
    signature = hashlib.sha1("".join(sorted([TOKEN, timestamp, nonce])).encode()).hexdigest()
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce}


def push(fields: str) -> bytes:
    return (
        "<xml><ToUserName>gh_demo</ToUserName><FromUserName>o_customer_001</FromUserName>"
        f"<CreateTime>1700000000</CreateTime>{fields}</xml>"
    ).encode()


async def main() -> None:
    transport = httpx.ASGITransport(app=starlette_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as wechat:
        check = await wechat.get("/wechat", params={**signed(), "echostr": "hello"})
        print(check.status_code, check.text)  # the URL check echoes echostr
        clicked = push(
            "<MsgType>text</MsgType><Content>满意</Content><MsgId>1</MsgId>"
            "<bizmsgmenuid>101</bizmsgmenuid>"
        )
        answer = await wechat.post("/wechat", params=signed(), content=clicked)
        print(answer.status_code, ElementTree.fromstring(answer.text).findtext("Content"))
        retry = await wechat.post("/wechat", params=signed(), content=clicked)
        print(retry.content == answer.content)  # WeChat's retry: the same answer, not run twice
        event = push(
            "<MsgType>event</MsgType><Event>kf_create_session</Event>"
            "<KfAccount>alice@gh_demo</KfAccount>"
        )
        print((await wechat.post("/wechat", params=signed(), content=event)).text)

    transport = httpx.ASGITransport(app=fastapi_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as wechat:
        check = await wechat.get("/wechat", params={**signed(), "echostr": "hello"})
        print("FastAPI:", check.status_code, check.text)


asyncio.run(main())
# Output:
# 200 hello
# 200 感谢您的反馈！
# True
# alice@gh_demo now serves o_customer_001
# success
# FastAPI: 200 hello
