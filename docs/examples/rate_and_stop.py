"""A rate cap shared by two sends, and a run stopped from another task."""

import asyncio
import os

from wechat_kf import AsyncWeChat, RateLimiter, SendControl, Text


async def main() -> None:
    async with AsyncWeChat(
        os.environ["WECHAT_APPID"],
        os.environ["WECHAT_SECRET"],
        base_url=os.environ.get("WECHAT_BASE_URL", "https://api.weixin.qq.com"),
    ) as wx:
        members = [f"o_member_{n:03d}" for n in range(100) if n % 10 != 9]  # the 90 who wrote
        budget = RateLimiter(200, burst=20)  # 200 messages a second, for both sends together
        first, second = await asyncio.gather(
            wx.message.send_many(members[:45], Text(content="A 组通知"), rate=budget),
            wx.message.send_many(members[45:], Text(content="B 组通知"), rate=budget),
        )
        print(first.sent + second.sent, "sent within one budget")

        control = SendControl()  # stop() from anywhere: no new sends, those in flight finish
        slow = RateLimiter(5, burst=1)  # one message every 0.2 s

        async def stop_soon() -> None:
            await asyncio.sleep(0.5)
            control.stop()

        stopper = asyncio.create_task(stop_soon())
        report = await wx.message.send_many(
            members, Text(content="第二轮"), rate=slow, control=control
        )
        await stopper
        print("stopped by", type(report.stopped_by).__name__)
        print(report.sent + report.skipped == len(members), report.skipped > 0)  # never sent


asyncio.run(main())
# Output:
# 90 sent within one budget
# stopped by SendCancelledError
# True True
