"""WeChat's media limits, checked before any request: the format by the file's own bytes, the
size, a voice's length."""

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from wechat_kf import AsyncWeChat, Image, Message, ValidationError, Video, Voice

PICTURE = Path(__file__).with_name("shop.jpg")
LONG_VOICE = b"#!AMR\n" + (b"\x3c" + bytes(31)) * 3100  # 3,100 frames of 20 ms: 62 s


def refused(build: Callable[[], Message]) -> None:
    try:
        build()
    except ValidationError as exc:  # also a ValueError
        print(f"{exc.field}: {exc.limit}")


async def main() -> None:
    refused(lambda: Image(file=b"<html>not a picture</html>"))  # checked when built
    refused(lambda: Image(file="no/such/file.jpg"))
    refused(lambda: Voice(file=PICTURE))  # a JPEG is not a voice
    refused(lambda: Voice(file=LONG_VOICE))
    refused(lambda: Video(media_id="video_o_customer_006", thumb_file=bytes(70 * 1024)))

    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
    ) as wx:
        try:
            await wx.media.upload(b"\xff\xd8\xff" + bytes(65 * 1024), "thumb")
        except ValidationError as exc:  # before the network: no request was made
            print(f"{exc.field}: {exc.limit}")
        thumb = await wx.media.upload(PICTURE, "thumb")  # fits: a 1,824-byte JPEG
        print(thumb.type, "uploaded")


asyncio.run(main())
# Output:
# Image.file: an image must be JPEG, PNG or GIF by its content (got an unrecognised format)
# Image.file: cannot read the file: No such file or directory
# Voice.file: a voice must be AMR or MP3 by its content (got JPEG)
# Voice.file: a voice must be at most 60 s long (got 62.0 s)
# Video.thumb_file: must be at most 64 KB (got 71680 bytes)
# source: must be at most 64 KB (got 66563 bytes)
# thumb uploaded
