"""Upload a temporary media, and download what users send: whole, to a file, or chunk by chunk."""

import asyncio
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from wechat_kf import AsyncWeChat, InvalidMediaIdError

PICTURE = Path(__file__).with_name("shop.jpg")


async def main() -> None:
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
    ) as wx:
        media = await wx.media.upload(PICTURE, "image")  # bytes, a path or a binary file
        print(media.type, media.expires_at - media.created_at)  # temporary: 3 days
        thumb = await wx.media.upload(PICTURE.read_bytes(), "thumb")  # every call uploads
        print(thumb.type, thumb.media_id != media.media_id)

        # What users sent: the media_id of their ImageMessage, VoiceMessage, VideoMessage
        photo = await wx.media.download("photo_o_customer_003")
        print(len(photo), photo[:3] == b"\xff\xd8\xff")  # a JPEG's first bytes

        with tempfile.TemporaryDirectory() as directory:  # streamed into a file, then renamed
            saved = await wx.media.download_to("voice_o_customer_004", Path(directory) / "v.amr")
            print(saved.content_type, saved.size, saved.filename)

        async with wx.media.stream("photo_o_customer_003") as stream:  # as it arrives
            print(stream.content_type, sum([len(chunk) async for chunk in stream]))

        # A video answers a download link: download() and stream() follow it
        link = await wx.media.video_url("video_o_customer_006")
        print(urlsplit(link).path, len(await wx.media.download("video_o_customer_006")))

        try:
            await wx.media.download("expired_or_unknown")
        except InvalidMediaIdError as exc:  # older than 3 days, or never uploaded
            print(type(exc).__name__, exc.errcode)


asyncio.run(main())
# Output:
# image 3 days, 0:00:00
# thumb True
# 2061 True
# audio/amr 1606 voice_o_customer_004.amr
# image/jpeg 2061
# /vweixinp.tc.qq.com/download 56
# InvalidMediaIdError 40007
