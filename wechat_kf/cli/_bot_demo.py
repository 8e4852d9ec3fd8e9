"""The demo's bot: a model that thinks 8 s, answered past WeChat's 5 s with "typing..." shown.

A user writes in; WeChat's push reaches a :class:`~wechat_kf.callback.CallbackEndpoint` given
the demo's client (``wechat=wx``), called framework-neutrally (no web server needed), signed as
WeChat signs it. The model runs on a :class:`~wechat_kf.testing.VirtualClock` that moves the
fake WeChat's clock with it: its 8 seconds pass in no time, and the timeline printed is the
fake's own record of what reached it, and when.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import anyio

from wechat_kf import AsyncWeChat
from wechat_kf.callback import CallbackEndpoint, CallbackHandler, Incoming
from wechat_kf.callback._defaults import REPLY_DEADLINE
from wechat_kf.callback._signature import compute_signature
from wechat_kf.testing import FakeWeChat, VirtualClock

__all__ = ["BOT_USER", "slow_answer"]

#: The user who asks the bot, and what.
BOT_USER: Final = "o_customer_007"
QUESTION: Final = "退货政策是什么？"
#: What the "model" streams, after thinking for :data:`THINKING` seconds.
PARAGRAPHS: Final = (
    "收到商品 7 天内可以无理由退货。",
    "在订单详情页点「申请售后」，选择「退货退款」，寄回后填写快递单号。",
    "我们收到商品后 1-3 个工作日内原路退款。",
)
THINKING: Final = 8.0
_TOKEN: Final = "demo_token"
_SEND: Final = "/cgi-bin/message/custom/send"
_TYPING: Final = "/cgi-bin/message/custom/typing"


async def slow_answer(fake: FakeWeChat, wx: AsyncWeChat) -> dict[str, Any]:
    """Play the conversation; return its timeline (seconds from the push) and outcomes."""
    clock = VirtualClock(follow=fake.clock)
    runs = 0

    async def model(_incoming: Incoming) -> AsyncIterator[str]:
        nonlocal runs
        runs += 1
        await clock.sleep(THINKING)
        for paragraph in PARAGRAPHS:
            yield paragraph

    bot = CallbackEndpoint(
        CallbackHandler(token=_TOKEN, appid=fake.appid, clock=fake.clock.now),
        model,
        wechat=wx,
        ai_generated=True,
        clock=clock,
    )
    fake.user_says(BOT_USER, QUESTION)
    start = fake.clock.now()
    push = _push(int(start))
    timeline: list[tuple[float, str, str]] = [(0.0, "the user writes", QUESTION)]

    async def wechat_pushes(what: str, note: str = "") -> None:
        answer = (await bot.answer("POST", *push)).body.decode()
        timeline.append((clock.now(), what, repr(answer) + note))

    async with bot.running():
        async with anyio.create_task_group() as group:
            group.start_soon(wechat_pushes, "WeChat gets", " (the reply deadline)")
            await clock.sleeping(2)  # the 4 s deadline and the model both wait
            clock.advance(REPLY_DEADLINE)
        await clock.sleeping(2)  # the model thinks, "typing..." shows (its renewal waits)
        clock.advance(1)
        # a retry, as if the first answer had been lost on the way
        await wechat_pushes("WeChat retries", " (the model is not run twice)")
        clock.advance(THINKING - clock.now())
        await bot.wait_idle()
    for request in fake.requests:
        if request.path not in (_SEND, _TYPING) or request.json().get("touser") != BOT_USER:
            continue
        body = request.json()
        at = request.time - start
        if request.path == _TYPING:
            timeline.append((at, "typing...", body["command"]))
        else:
            label = "message (AI)" if body.get("aimsgcontext") else "message"
            timeline.append((at, label, body["text"]["content"]))
    timeline.sort(key=lambda row: row[0])
    rows = [(round(at, 1), what, said) for at, what, said in timeline]
    return {"timeline": rows, "model_runs": runs}


def _push(timestamp: int) -> tuple[dict[str, str], bytes]:
    """WeChat's push of the user's question, plain-signed as WeChat signs it."""
    nonce = "1320562132"
    query = {
        "signature": compute_signature(_TOKEN, str(timestamp), nonce),
        "timestamp": str(timestamp),
        "nonce": nonce,
        "openid": BOT_USER,
    }
    body = (
        f"<xml><ToUserName><![CDATA[gh_demo]]></ToUserName>"
        f"<FromUserName><![CDATA[{BOT_USER}]]></FromUserName>"
        f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{QUESTION}]]></Content><MsgId>7007</MsgId></xml>"
    ).encode()
    return query, body
