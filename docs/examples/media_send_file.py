"""Send pictures from files: each file is uploaded once, by its content, and its media_id reused."""

import asyncio
import os
from pathlib import Path

from wechat_kf import AsyncWeChat, Image, MiniProgramPage

PICTURE = Path(__file__).with_name("shop.jpg")  # a 64×64 JPEG next to this program


async def main() -> None:
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
    ) as wx:
        # One call: the file is checked (JPEG by its bytes, 10 MB at most), uploaded, sent.
        await wx.message.send("o_customer_003", Image(file=PICTURE))

        # The same picture to 100 members: no more uploads (cached by its SHA-256)
        members = [f"o_member_{n:03d}" for n in range(100)]
        report = await wx.message.send_many(members, Image(file=PICTURE))
        print(report.sent, report.failed, dict(report.errcodes))

        # Thumbnails too: a mini-program card's picture from the same file
        card = MiniProgramPage(
            title="新品上架", appid="wxmini", pagepath="pages/new", thumb_file=PICTURE
        )
        await wx.message.send("o_customer_001", card)
        print("uploads:", wx.media.cache.uploads)

        # Ahead of a send: the message with its files named by media_id (uploaded if need be)
        ready = await wx.media.resolve(Image(file=PICTURE))
        print(ready.message.has_local_files, len(ready.uploads), wx.media.cache.uploads)


asyncio.run(main())
# Output:
# 90 10 {45015: 10}
# uploads: 1
# False 1 1
