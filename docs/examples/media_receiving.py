"""Download what users send: the pushes of images, voices and videos name their media_id."""

import asyncio
import hashlib
import os
import time
from xml.etree import ElementTree

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from wechat_kf import AsyncWeChat
from wechat_kf.callback import (
    CallbackHandler,
    ImageMessage,
    Incoming,
    Reply,
    TextReply,
    VideoMessage,
    VoiceMessage,
)
from wechat_kf.callback.starlette import callback_endpoint

TOKEN = "my_token"
wx = AsyncWeChat(
    os.environ["WECHAT_APPID"],
    os.environ["WECHAT_SECRET"],
    base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
)


async def on_message(incoming: Incoming) -> Reply | None:
    if isinstance(incoming, ImageMessage) and incoming.media_id:
        photo = await wx.media.download(incoming.media_id)  # the bytes: to your storage, a model
        return TextReply(content=f"收到图片（{len(photo)} 字节）")
    if isinstance(incoming, VoiceMessage):
        said = incoming.recognition or "(no recognition)"  # WeChat's speech-to-text, if enabled
        audio = await wx.media.download(incoming.media_id)
        return TextReply(content=f"收到语音：{said}（{incoming.format}，{len(audio)} 字节）")
    if isinstance(incoming, VideoMessage):  # ShortVideoMessage too: stream it into a file
        saved = await wx.media.download_to(incoming.media_id, os.devnull)  # or videos/x.mp4
        return TextReply(content=f"收到视频（{saved.size} 字节）")
    return None


endpoint = callback_endpoint(CallbackHandler(token=TOKEN, appid=wx.appid), on_message)
app = Starlette(routes=[Route("/wechat", endpoint, methods=["GET", "POST"])])


# What WeChat does: sign the query with the same token, post the XML.
def signed() -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), "1320562132"
    signature = hashlib.sha1("".join(sorted([TOKEN, timestamp, nonce])).encode()).hexdigest()
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce}


def push(openid: str, msg_id: int, fields: str) -> bytes:
    return (
        f"<xml><ToUserName>gh_demo</ToUserName><FromUserName>{openid}</FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime>{fields}<MsgId>{msg_id}</MsgId></xml>"
    ).encode()


PUSHES = [
    push(
        "o_customer_003",
        1,
        "<MsgType>image</MsgType><PicUrl>http://mmbiz.qpic.cn/demo</PicUrl>"
        "<MediaId>photo_o_customer_003</MediaId>",
    ),
    push(
        "o_customer_004",
        2,
        "<MsgType>voice</MsgType><MediaId>voice_o_customer_004</MediaId><Format>amr</Format>"
        "<Recognition>优惠券怎么用</Recognition>",
    ),
    push(
        "o_customer_006",
        3,
        "<MsgType>video</MsgType><MediaId>video_o_customer_006</MediaId>"
        "<ThumbMediaId>thumb_demo_card</ThumbMediaId>",
    ),
]


async def main() -> None:
    async with (
        wx,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as wechat,
    ):
        for body in PUSHES:
            answer = await wechat.post("/wechat", params=signed(), content=body)
            print(ElementTree.fromstring(answer.text).findtext("Content"))


asyncio.run(main())
# Output:
# 收到图片（2061 字节）
# 收到语音：优惠券怎么用（amr，1606 字节）
# 收到视频（56 字节）
