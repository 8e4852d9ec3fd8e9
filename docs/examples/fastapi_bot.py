"""A FastAPI bot whose answer takes longer than WeChat waits (its 5 seconds).

The "model" thinks for 8 seconds and streams three paragraphs. The endpoint answers WeChat
``success`` at its 4-second deadline (so WeChat neither retries nor tells the user the account
cannot serve them), shows "typing..." while the model thinks, and sends each paragraph through
the customer-service API as it comes, marked AI-generated. WeChat's retry of the push gets
``success`` too: the model never runs twice.

Run it: ``python docs/examples/fastapi_bot.py`` starts the fake WeChat on a loopback port
unless ``WECHAT_BASE_URL`` is set, plays WeChat's side of one conversation against the app,
and prints what the user received. Serve it for real: ``uvicorn --factory fastapi_bot:create_app``
with ``WECHAT_APPID`` and ``WECHAT_SECRET`` set. ``BOT_THINKING_SECONDS`` and
``BOT_REPLY_DEADLINE`` make it quicker (its test uses them).
"""

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from wechat_kf import AsyncWeChat, OperCode
from wechat_kf.callback import (
    CallbackEndpoint,
    CallbackHandler,
    DeliveryFailure,
    Incoming,
    TextMessage,
)
from wechat_kf.callback.starlette import callback_endpoint
from wechat_kf.testing import FakeWeChat

TOKEN = "my_token"  # the token set in the admin console's server configuration
THINKING = float(os.environ.get("BOT_THINKING_SECONDS", "8"))
DEADLINE = float(os.environ.get("BOT_REPLY_DEADLINE", "4"))
USER = "o_customer_001"
PARAGRAPHS = [
    "退货很简单：在订单详情页点「申请售后」，选择「退货退款」。",
    "审核通过后，请在 7 天内寄回商品，并填写快递单号。",
    "我们收到商品后 1-3 个工作日内原路退款。还有其他问题吗？",
]
model_calls = 0


async def answer(incoming: Incoming) -> AsyncIterator[str]:
    """The bot: a stand-in for an LLM streaming its answer, one paragraph at a time."""
    global model_calls
    if not isinstance(incoming, TextMessage):
        return
    model_calls += 1
    await asyncio.sleep(THINKING * 0.75)  # thinking...
    for paragraph in PARAGRAPHS:
        yield paragraph
        await asyncio.sleep(THINKING * 0.25 / len(PARAGRAPHS))


async def delivery_failed(failure: DeliveryFailure) -> None:
    print("not delivered:", failure)  # e.g. fall back to a template message, alert, ...


def create_app(base_url: str | None = None) -> FastAPI:
    """The application: one route for WeChat's pushes, the bot's task group in its lifespan."""
    appid = os.environ.get("WECHAT_APPID", FakeWeChat().appid)
    secret = os.environ.get("WECHAT_SECRET", FakeWeChat().secret)
    base_url = base_url or os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com")
    wx = AsyncWeChat(appid, secret, base_url=base_url)
    bot = CallbackEndpoint(
        CallbackHandler(token=TOKEN, appid=appid),
        answer,
        wechat=wx,
        reply_deadline=DEADLINE,
        ai_generated=True,  # every message carries aimsgcontext.is_ai_msg = 1
        on_delivery_failed=delivery_failed,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with wx, bot.running():  # answers run here; on shutdown they get 10 s, then
            yield  # those still running are reported to delivery_failed

    app = FastAPI(lifespan=lifespan)
    app.add_route("/wechat", callback_endpoint(bot), methods=["GET", "POST"])
    app.state.bot, app.state.wx = bot, wx
    return app


# What WeChat does: sign the query with the same token, post the XML, retry after 5 s.
def signed() -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), "1320562132"
    signature = hashlib.sha1("".join(sorted([TOKEN, timestamp, nonce])).encode()).hexdigest()
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce}


PUSH = (
    f"<xml><ToUserName>gh_demo</ToUserName><FromUserName>{USER}</FromUserName>"
    "<CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>怎么退货？</Content>"
    "<MsgId>6054768590064713728</MsgId></xml>"
).encode()


async def conversation(base_url: str) -> None:
    app = create_app(base_url)
    started = int(time.time())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as wechat:
            begun = time.monotonic()
            first = await wechat.post("/wechat", params=signed(), content=PUSH)
            waited = time.monotonic() - begun
            in_time = "within WeChat's 5 s" if waited < 5 else "too late"
            print(f"WeChat's push answered {first.text!r} at the deadline, {in_time}")
            retry = await wechat.post("/wechat", params=signed(), content=PUSH)
            print(f"WeChat's retry answered {retry.text!r}; the model ran {model_calls} time")
        await app.state.bot.wait_idle()  # the answer is delivered (the lifespan would wait too)
        print(f"{USER} received:")
        async for record in app.state.wx.records.iter(started - 1, int(time.time()) + 1):
            if record.openid == USER and record.opercode == OperCode.AGENT_SENT_MESSAGE:
                print(" ", record.text)


def main() -> None:
    with ExitStack() as stack:
        base_url = os.environ.get("WECHAT_BASE_URL")
        if base_url is None:  # no WeChat to talk to: start the fake one, the user writes in
            fake = FakeWeChat()
            base_url = stack.enter_context(fake.serve()).base_url
            fake.user_says(USER, "怎么退货？")
        asyncio.run(conversation(base_url))


if __name__ == "__main__":
    main()
# Output:
# WeChat's push answered 'success' at the deadline, within WeChat's 5 s
# WeChat's retry answered 'success'; the model ran 1 time
# o_customer_001 received:
#   退货很简单：在订单详情页点「申请售后」，选择「退货退款」。
#   审核通过后，请在 7 天内寄回商品，并填写快递单号。
#   我们收到商品后 1-3 个工作日内原路退款。还有其他问题吗？
