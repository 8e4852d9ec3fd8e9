"""A bulk send cut short by a timeout: the partial report is on the SendControl you passed."""

import asyncio
import os

import anyio

from wechat_kf import AsyncWeChat, RateLimiter, SendControl, Text


async def main() -> None:
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
    ) as wx:
        members = [f"o_member_{n:03d}" for n in range(100)]
        control = SendControl()
        with anyio.move_on_after(1):  # a deadline, a shutdown: any cancellation
            await wx.message.send_many(
                members, Text(content="通知"), rate=RateLimiter(10, burst=1), control=control
            )
        report = control.report  # the recipients attempted so far, each with its result
        assert report is not None  # None only while the run goes on
        print(report.complete, 0 < report.total < len(members))
        print(report.sent > 0, report.unknown)


asyncio.run(main())
# Output:
# False True
# True 0
