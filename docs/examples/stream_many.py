"""Millions of recipients: results as they end, memory flat, nothing lost when you stop early."""

import asyncio
import os
from collections.abc import AsyncIterator

from wechat_kf import AsyncWeChat, SendStatus, Text


async def members() -> AsyncIterator[str]:  # e.g. a database cursor: read as workers free up
    for n in range(100):
        yield f"o_member_{n:03d}"


async def main() -> None:
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
    ) as wx:
        notice = Text(content="【通知】今晚 23:00 维护")
        saved: dict[str, SendStatus] = {}  # your own storage
        async with wx.message.stream_many(members(), notice, max_concurrency=8) as results:
            async for result in results:  # in completion order; result.index is the position
                saved[result.openid] = result.status
                if len(saved) == 40:
                    break  # e.g. shutting down: no new sends, those in flight finish
        for result in results.unread:  # ended after we stopped reading: store them too
            saved[result.openid] = result.status
        summary = results.summary
        print(len(saved) == summary.total, summary.complete)
        print(sum(status is SendStatus.SENT for status in saved.values()) == summary.sent)


asyncio.run(main())
# Output:
# True False
# True
